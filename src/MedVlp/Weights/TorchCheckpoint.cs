using System.IO.Compression;
using MedVlp.Serialization;
using static TorchSharp.torch;

namespace MedVlp.Weights;

/// <summary>One tensor of a weight file, described without reading its data.</summary>
/// <param name="Name">The name (nested dicts joined with dots).</param>
/// <param name="DType">The element type.</param>
/// <param name="Shape">The shape.</param>
public sealed record TensorInfo(string Name, ScalarType DType, IReadOnlyList<long> Shape)
{
    /// <summary>Number of elements.</summary>
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);
}

/// <summary>
/// Reads PyTorch <c>torch.save</c> checkpoints in the zip format (PyTorch 1.6 and later; <c>.pt</c>, <c>.pth</c>,
/// <c>.bin</c>), as MedBLIP, M-FLAG, PRIOR, LVM-Med and Hugging Face (<c>pytorch_model.bin</c>) release them.
/// Only tensors and plain containers are reconstructed (see <see cref="RestrictedUnpickler"/>); nested dicts such as
/// <c>{"model": state_dict, "epoch": 3}</c> are flattened to dotted names (<c>model.encoder.weight</c>) and non-tensor
/// values are skipped. Each storage is read from the archive straight into its tensor after its size has been checked
/// against the archive entry.
/// </summary>
/// <remarks>
/// TorchSharp.PyBridge 1.4.4 was evaluated for this and not used: it turns any unknown pickled global into a dictionary
/// without an error, sizes buffers from the unchecked element count, limits tensors to 2 GB and ignores storage offsets.
/// </remarks>
public static class TorchCheckpoint
{
    /// <summary>The largest <c>data.pkl</c> accepted.</summary>
    public const long MaxPickleLength = 512L << 20;

    /// <summary>Whether <paramref name="path"/> starts like a zip archive (the <c>torch.save</c> format).</summary>
    public static bool IsZipCheckpoint(string path)
    {
        using var stream = File.OpenRead(path);
        Span<byte> magic = stackalloc byte[4];
        return stream.Read(magic) == 4 && magic[0] == 0x50 && magic[1] == 0x4b && magic[2] == 0x03 && magic[3] == 0x04;
    }

    /// <summary>Lists the tensors of the checkpoint without reading their data.</summary>
    /// <exception cref="ModelFormatException">The file is not a readable <c>torch.save</c> archive.</exception>
    public static IReadOnlyList<TensorInfo> Inspect(string path)
    {
        using var archive = Open(path, out var prefix);
        var tensors = ReadTensors(archive, prefix, path);
        return tensors.Select(t => new TensorInfo(t.Key, t.Value.Storage.DType, t.Value.Size)).ToList();
    }

    /// <summary>Reads every tensor of the checkpoint onto the CPU (or <paramref name="device"/>), converting floating-point
    /// tensors to <paramref name="dtype"/> when given.</summary>
    /// <exception cref="ModelFormatException">The file is not a readable <c>torch.save</c> archive.</exception>
    public static Dictionary<string, Tensor> Load(string path, ScalarType? dtype = null, Device? device = null)
    {
        using var archive = Open(path, out var prefix);
        var described = ReadTensors(archive, prefix, path);
        var uses = described.Values.GroupBy(t => t.Storage.Key).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
        var storages = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var (name, t) in described)
            {
                if (!storages.TryGetValue(t.Storage.Key, out var storage))
                {
                    storage = ReadStorage(archive, prefix, t.Storage, path, name);
                    storages.Add(t.Storage.Key, storage);
                }

                Tensor tensor;
                using (var view = storage.as_strided(t.Size, t.Stride, t.Offset))
                {
                    // A storage shared by several tensors (tied weights, views) is copied so the results are independent.
                    tensor = uses[t.Storage.Key] > 1 || !view.is_contiguous() || view.numel() != storage.numel()
                        ? view.contiguous().clone()
                        : view.alias();
                }

                result.Add(name, Safetensors.Convert(tensor, dtype, device));
            }
        }
        catch
        {
            foreach (var t in result.Values)
            {
                t.Dispose();
            }

            throw;
        }
        finally
        {
            foreach (var s in storages.Values)
            {
                s.Dispose();
            }
        }

        return result;
    }

    private static ZipArchive Open(string path, out string prefix)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"Checkpoint {path} does not exist.", path);
        }

        if (!IsZipCheckpoint(path))
        {
            throw new ModelFormatException(path, "format", "not a zip archive: only the torch.save format of PyTorch 1.6 and later is read " +
                "(re-save legacy checkpoints with a current PyTorch, or convert them to safetensors).");
        }

        var stream = File.OpenRead(path);
        ZipArchive? archive = null;
        try
        {
            archive = new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: false);

            // The central directory is read lazily: enumerate it here, where a damaged one is reported (and the file closed).
            var pickles = archive.Entries.Where(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal) && e.FullName.Count(c => c == '/') == 1).ToList();
            if (pickles.Count != 1)
            {
                throw new ModelFormatException(path, "data.pkl", $"expected one <name>/data.pkl in the archive, found {pickles.Count}.");
            }

            prefix = pickles[0].FullName[..^"data.pkl".Length];
            var byteOrder = archive.GetEntry(prefix + "byteorder");
            if (byteOrder is not null)
            {
                if (byteOrder.Length > 16)
                {
                    throw new ModelFormatException(path, prefix + "byteorder", $"{byteOrder.Length} bytes; expected \"little\" or \"big\".");
                }

                using var reader = new StreamReader(byteOrder.Open());
                var order = reader.ReadToEnd().Trim();
                if (order != "little")
                {
                    throw new ModelFormatException(path, prefix + "byteorder", $"\"{order}\": only little-endian checkpoints are read.");
                }
            }

            return archive;
        }
        catch (InvalidDataException ex)
        {
            archive?.Dispose();
            stream.Dispose();
            throw new ModelFormatException(path, "zip directory", $"the archive is damaged ({ex.Message}).", ex);
        }
        catch
        {
            archive?.Dispose();
            stream.Dispose();
            throw;
        }
    }

    private static Dictionary<string, PickledTensor> ReadTensors(ZipArchive archive, string prefix, string path)
    {
        var entry = archive.GetEntry(prefix + "data.pkl")!;
        if (entry.Length > MaxPickleLength)
        {
            throw new ModelFormatException(path, entry.FullName, $"{entry.Length} bytes exceeds the {MaxPickleLength}-byte limit for the pickle.");
        }

        CheckSizes(entry, path, entry.FullName);

        var bytes = new byte[entry.Length];
        try
        {
            // Open() reads the entry's local header, which the central directory does not vouch for.
            using var s = entry.Open();
            s.ReadExactly(bytes);
        }
        catch (Exception ex) when (ex is EndOfStreamException or InvalidDataException)
        {
            throw new ModelFormatException(path, entry.FullName, $"cannot read the pickle ({ex.Message}).", ex);
        }

        var root = RestrictedUnpickler.Load(bytes, path, entry.FullName);
        var result = new Dictionary<string, PickledTensor>(StringComparer.Ordinal);
        Flatten(root, "", result, path, entry.FullName, 0);
        if (result.Count == 0)
        {
            throw new ModelFormatException(path, entry.FullName, "the checkpoint holds no tensors.");
        }

        return result;
    }

    private static void Flatten(object? value, string name, Dictionary<string, PickledTensor> result, string path, string field, int depth)
    {
        if (depth > 32)
        {
            throw new ModelFormatException(path, field, $"containers nest deeper than 32 levels at {name}.");
        }

        switch (value)
        {
            case PickledTensor t:
                if (!result.TryAdd(name, t))
                {
                    throw new ModelFormatException(path, field, $"the name {name} occurs twice after flattening.");
                }

                break;
            case PickledDict dict:
                foreach (var (k, v) in dict)
                {
                    var key = k switch
                    {
                        string s => s,
                        long l => l.ToString(System.Globalization.CultureInfo.InvariantCulture),
                        _ => null,
                    };
                    if (key is not null)
                    {
                        Flatten(v, name.Length == 0 ? key : $"{name}.{key}", result, path, field, depth + 1);
                    }
                }

                break;
            case List<object?> list:
                for (var i = 0; i < list.Count; i++)
                {
                    Flatten(list[i], name.Length == 0 ? $"{i}" : $"{name}.{i}", result, path, field, depth + 1);
                }

                break;
        }
    }

    /// <summary>The zip directory's sizes are checked against the file before they size any buffer: torch.save stores
    /// entries uncompressed, and a compressed entry may not claim more than deflate can produce (about 1032:1).</summary>
    private static void CheckSizes(ZipArchiveEntry entry, string path, string field)
    {
        var fileLength = new FileInfo(path).Length;
        if (entry.CompressedLength > fileLength || entry.Length < 0 ||
            (entry.CompressedLength != entry.Length && entry.Length > Math.Max(entry.CompressedLength, 1) * 1100L))
        {
            throw new ModelFormatException(path, field, $"the zip directory says {entry.FullName} has {entry.Length} bytes from {entry.CompressedLength} stored bytes, which a {fileLength}-byte file cannot hold.");
        }
    }

    private static Tensor ReadStorage(ZipArchive archive, string prefix, PickledStorage storage, string path, string tensorName)
    {
        var entryName = $"{prefix}data/{storage.Key}";
        var entry = archive.GetEntry(entryName) ?? throw new ModelFormatException(path, tensorName, $"its storage {entryName} is missing from the archive.");
        var elementSize = storage.DType switch
        {
            ScalarType.Float64 or ScalarType.Int64 => 8,
            ScalarType.Float32 or ScalarType.Int32 => 4,
            ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Int16 => 2,
            _ => 1,
        };
        long bytes;
        try
        {
            bytes = checked(storage.ElementCount * elementSize);
        }
        catch (OverflowException ex)
        {
            throw new ModelFormatException(path, tensorName, $"storage {storage.Key}: {storage.ElementCount} elements overflow 64 bits.", ex);
        }

        if (entry.Length != bytes)
        {
            throw new ModelFormatException(path, tensorName, $"storage {entryName} has {entry.Length} bytes but the pickle says {storage.ElementCount} x {storage.DType} = {bytes} bytes.");
        }

        CheckSizes(entry, path, tensorName);

        var tensor = empty([storage.ElementCount], storage.DType);
        try
        {
            using var s = entry.Open();
            NativeStorage.ReadFrom(s, tensor, path, tensorName);
        }
        catch (InvalidDataException ex)
        {
            tensor.Dispose();
            throw new ModelFormatException(path, tensorName, $"storage {entryName} cannot be read ({ex.Message}).", ex);
        }
        catch
        {
            tensor.Dispose();
            throw;
        }

        return tensor;
    }
}
