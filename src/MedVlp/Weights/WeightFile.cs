using MedVlp.Serialization;
using static TorchSharp.torch;

namespace MedVlp.Weights;

/// <summary>The container formats MedVlp reads weights from.</summary>
public enum WeightFileFormat
{
    /// <summary>One safetensors file.</summary>
    Safetensors,

    /// <summary>A sharded safetensors checkpoint (<c>model.safetensors.index.json</c> and its shards).</summary>
    ShardedSafetensors,

    /// <summary>A PyTorch <c>torch.save</c> zip archive (<c>.pt</c>, <c>.pth</c>, <c>.bin</c>).</summary>
    TorchZip,
}

/// <summary>What <see cref="WeightFile.Inspect"/> found: the format, the tensors and the layout their names match.</summary>
/// <param name="Path">The file.</param>
/// <param name="Format">Its format.</param>
/// <param name="Tensors">The tensors, sorted by name.</param>
/// <param name="Layout">The built-in layout whose signature the names match, if any.</param>
public sealed record WeightFileInfo(string Path, WeightFileFormat Format, IReadOnlyList<TensorInfo> Tensors, WeightLayout? Layout)
{
    /// <summary>Total bytes of tensor data.</summary>
    public long TotalBytes => Tensors.Sum(t => t.ElementCount * ElementSize(t.DType));

    /// <summary>Bytes per element of <paramref name="type"/>.</summary>
    public static int ElementSize(ScalarType type) => type switch
    {
        ScalarType.Float64 or ScalarType.Int64 => 8,
        ScalarType.Float32 or ScalarType.Int32 => 4,
        ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Int16 => 2,
        _ => 1,
    };
}

/// <summary>Reads weights from any supported file by its content: safetensors, sharded safetensors or <c>torch.save</c> zip.</summary>
public static class WeightFile
{
    /// <summary>The format of <paramref name="path"/>, from its name and first bytes.</summary>
    /// <exception cref="ModelFormatException">The file is none of the supported formats.</exception>
    public static WeightFileFormat DetectFormat(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"Weights file {path} does not exist.", path);
        }

        if (path.EndsWith(".index.json", StringComparison.OrdinalIgnoreCase))
        {
            return WeightFileFormat.ShardedSafetensors;
        }

        if (TorchCheckpoint.IsZipCheckpoint(path))
        {
            return WeightFileFormat.TorchZip;
        }

        using (var stream = File.OpenRead(path))
        {
            Span<byte> head = stackalloc byte[9];
            if (stream.Read(head) == 9 && head[8] == (byte)'{')
            {
                return WeightFileFormat.Safetensors;
            }
        }

        throw new ModelFormatException(path, "format", "not a safetensors file (8-byte length then '{'), a sharded-checkpoint index (*.index.json) or a torch.save zip archive.");
    }

    /// <summary>Lists the tensors of <paramref name="path"/> without reading their data, and detects the layout.</summary>
    public static WeightFileInfo Inspect(string path)
    {
        var format = DetectFormat(path);
        IReadOnlyList<TensorInfo> tensors = format switch
        {
            WeightFileFormat.Safetensors => Safetensors.ReadHeader(path).Entries.Select(e => new TensorInfo(e.Name, Safetensors.ScalarTypeOf(e.DType), e.Shape)).ToList(),
            WeightFileFormat.ShardedSafetensors => InspectShards(path),
            _ => TorchCheckpoint.Inspect(path),
        };
        var sorted = tensors.OrderBy(t => t.Name, StringComparer.Ordinal).ToList();
        return new WeightFileInfo(path, format, sorted, WeightLayouts.Detect(sorted.Select(t => t.Name)));
    }

    /// <summary>Reads every tensor of <paramref name="path"/> (CPU unless <paramref name="device"/>), converting
    /// floating-point tensors to <paramref name="dtype"/> when given. The caller owns (disposes) the tensors.</summary>
    public static Dictionary<string, Tensor> Load(string path, ScalarType? dtype = null, Device? device = null) => DetectFormat(path) switch
    {
        WeightFileFormat.Safetensors => Safetensors.Load(path, new SafetensorsLoadOptions { DType = dtype, Device = device }),
        WeightFileFormat.ShardedSafetensors => SafetensorsShards.Load(path, new SafetensorsLoadOptions { DType = dtype, Device = device }),
        _ => TorchCheckpoint.Load(path, dtype, device),
    };

    private static List<TensorInfo> InspectShards(string indexPath)
    {
        var index = SafetensorsShards.ReadIndex(indexPath);
        var directory = Path.GetDirectoryName(Path.GetFullPath(indexPath))!;
        return index.Values.Distinct(StringComparer.Ordinal)
            .SelectMany(shard => Safetensors.ReadHeader(Path.Combine(directory, shard)).Entries)
            .Select(e => new TensorInfo(e.Name, Safetensors.ScalarTypeOf(e.DType), e.Shape)).ToList();
    }
}
