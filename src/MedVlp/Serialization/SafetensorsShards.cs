using System.Text.Json;
using static TorchSharp.torch;

namespace MedVlp.Serialization;

/// <summary>
/// Sharded safetensors checkpoints as Hugging Face writes them: <c>model-00001-of-00003.safetensors</c> ... plus
/// <c>model.safetensors.index.json</c> (<c>{"metadata": {"total_size": N}, "weight_map": {"tensor": "shard file"}}</c>).
/// </summary>
public static class SafetensorsShards
{
    /// <summary>The index file name Hugging Face uses.</summary>
    public const string IndexFileName = "model.safetensors.index.json";

    /// <summary>The largest index accepted.</summary>
    public const long MaxIndexLength = 64L << 20;

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>Reads the index of a sharded checkpoint: tensor name to shard file name. Every shard it names is validated.</summary>
    /// <exception cref="ModelFormatException">The index is malformed, names a shard outside its folder or a tensor its shard lacks.</exception>
    public static IReadOnlyDictionary<string, string> ReadIndex(string indexPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(indexPath);
        if (!File.Exists(indexPath))
        {
            throw new FileNotFoundException($"Index file {indexPath} does not exist.", indexPath);
        }

        var length = new FileInfo(indexPath).Length;
        if (length > MaxIndexLength)
        {
            throw new ModelFormatException(indexPath, null, $"{length} bytes exceeds the {MaxIndexLength}-byte limit for an index.");
        }

        var bytes = File.ReadAllBytes(indexPath);
        if (!System.Text.Unicode.Utf8.IsValid(bytes))
        {
            throw new ModelFormatException(indexPath, null, "not valid UTF-8 JSON.");
        }

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(bytes);
        }
        catch (JsonException ex)
        {
            throw new ModelFormatException(indexPath, null, $"not valid JSON ({ex.Message}).", ex);
        }

        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object ||
                !document.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
            {
                throw new ModelFormatException(indexPath, "weight_map", "expected an object mapping tensor names to shard files.");
            }

            var result = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var item in map.EnumerateObject())
            {
                var file = item.Value.ValueKind == JsonValueKind.String ? item.Value.GetString()! : null;
                if (string.IsNullOrEmpty(file) || file != Path.GetFileName(file) || file is "." or ".." || file.Contains('\\', StringComparison.Ordinal))
                {
                    throw new ModelFormatException(indexPath, $"weight_map.{item.Name}", $"expected the plain name of a shard file next to the index, found {item.Value}.");
                }

                if (!result.TryAdd(item.Name, file))
                {
                    throw new ModelFormatException(indexPath, $"weight_map.{item.Name}", "the tensor is listed twice.");
                }
            }

            if (result.Count == 0)
            {
                throw new ModelFormatException(indexPath, "weight_map", "the index lists no tensors.");
            }

            var directory = Path.GetDirectoryName(Path.GetFullPath(indexPath))!;
            foreach (var shard in result.Values.Distinct(StringComparer.Ordinal))
            {
                var shardPath = Path.Combine(directory, shard);
                if (!File.Exists(shardPath))
                {
                    throw new ModelFormatException(indexPath, "weight_map", $"shard {shard} does not exist next to the index.");
                }

                var names = Safetensors.ReadHeader(shardPath).Entries.Select(e => e.Name).ToHashSet(StringComparer.Ordinal);
                foreach (var (tensor, file) in result)
                {
                    if (file == shard && !names.Contains(tensor))
                    {
                        throw new ModelFormatException(shardPath, tensor, $"the index places this tensor in {shard}, which does not contain it.");
                    }
                }

                foreach (var name in names)
                {
                    if (!result.TryGetValue(name, out var listed) || listed != shard)
                    {
                        throw new ModelFormatException(shardPath, name, $"the shard holds this tensor but the index {(listed is null ? "does not list it" : $"places it in {listed}")}.");
                    }
                }
            }

            return result;
        }
    }

    /// <summary>Loads every tensor of a sharded checkpoint, one shard at a time.</summary>
    public static Dictionary<string, Tensor> Load(string indexPath, SafetensorsLoadOptions? options = null)
    {
        options ??= new SafetensorsLoadOptions();
        var index = ReadIndex(indexPath);
        var directory = Path.GetDirectoryName(Path.GetFullPath(indexPath))!;
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var shard in index.Values.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal))
            {
                foreach (var (name, t) in Safetensors.Load(Path.Combine(directory, shard), options))
                {
                    result.Add(name, t);
                }
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

        return result;
    }

    /// <summary>
    /// Writes <paramref name="tensors"/> as shards of at most <paramref name="maxShardBytes"/> (a single larger tensor gets
    /// a shard of its own) plus <see cref="IndexFileName"/>, into <paramref name="directory"/>. Returns the index path.
    /// </summary>
    public static string Save(string directory, IReadOnlyDictionary<string, Tensor> tensors, long maxShardBytes, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentNullException.ThrowIfNull(tensors);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxShardBytes, 1);
        Directory.CreateDirectory(directory);
        var shards = new List<List<string>>();
        long current = 0, total = 0;
        foreach (var name in tensors.Keys.Order(StringComparer.Ordinal))
        {
            var bytes = tensors[name].numel() * tensors[name].ElementSize;
            if (shards.Count == 0 || (current + bytes > maxShardBytes && current > 0))
            {
                shards.Add([]);
                current = 0;
            }

            shards[^1].Add(name);
            current += bytes;
            total += bytes;
        }

        var weightMap = new SortedDictionary<string, string>(StringComparer.Ordinal);
        for (var s = 0; s < shards.Count; s++)
        {
            var file = $"model-{s + 1:D5}-of-{shards.Count:D5}.safetensors";
            Safetensors.Save(Path.Combine(directory, file), shards[s].ToDictionary(n => n, n => tensors[n], StringComparer.Ordinal), metadata);
            foreach (var n in shards[s])
            {
                weightMap[n] = file;
            }
        }

        var indexPath = Path.Combine(directory, IndexFileName);
        File.WriteAllBytes(indexPath, JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, object>
        {
            ["metadata"] = new Dictionary<string, long> { ["total_size"] = total },
            ["weight_map"] = weightMap,
        }, Indented));
        return indexPath;
    }
}
