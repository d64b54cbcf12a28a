using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Serialization;

/// <summary>Element types of the safetensors format.</summary>
public enum SafetensorsDType
{
    /// <summary>Boolean, one byte.</summary>
    Bool,

    /// <summary>Unsigned 8-bit integer.</summary>
    U8,

    /// <summary>Signed 8-bit integer.</summary>
    I8,

    /// <summary>Signed 16-bit integer.</summary>
    I16,

    /// <summary>Signed 32-bit integer.</summary>
    I32,

    /// <summary>Signed 64-bit integer.</summary>
    I64,

    /// <summary>IEEE half precision.</summary>
    F16,

    /// <summary>bfloat16.</summary>
    BF16,

    /// <summary>IEEE single precision.</summary>
    F32,

    /// <summary>IEEE double precision.</summary>
    F64,
}

/// <summary>One tensor's entry in a safetensors header.</summary>
/// <param name="Name">The tensor name.</param>
/// <param name="DType">Its element type.</param>
/// <param name="Shape">Its shape.</param>
/// <param name="Begin">First byte in the data section.</param>
/// <param name="End">One past the last byte in the data section.</param>
public sealed record SafetensorsEntry(string Name, SafetensorsDType DType, IReadOnlyList<long> Shape, long Begin, long End)
{
    /// <summary>Number of elements (product of the shape; 1 for a scalar).</summary>
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);
}

/// <summary>A validated safetensors header: the entries sorted by offset and the free-form metadata.</summary>
/// <param name="Entries">The tensors, in data order.</param>
/// <param name="Metadata">The <c>__metadata__</c> string map (empty if absent).</param>
/// <param name="DataOffset">File offset of the data section (8 + header length).</param>
public sealed record SafetensorsHeader(IReadOnlyList<SafetensorsEntry> Entries, IReadOnlyDictionary<string, string> Metadata, long DataOffset);

/// <summary>
/// Reads and writes the <see href="https://github.com/huggingface/safetensors">safetensors</see> format: an 8-byte
/// little-endian header length N, N bytes of JSON (<c>{"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}</c>),
/// then the raw little-endian tensor bytes. Every header is validated before anything is allocated from it: the length is
/// bounded by the file and by 100 MB, dtypes and shapes are checked, byte ranges must agree with shape x element size and
/// tile the data section exactly (no gaps, no overlaps), as the reference implementation requires.
/// </summary>
public static class Safetensors
{
    /// <summary>The largest header accepted (the reference implementation's limit).</summary>
    public const long MaxHeaderLength = 100_000_000;

    private const string MetadataKey = "__metadata__";

    /// <summary>Writes <paramref name="tensors"/> (any device; copied to the CPU) to <paramref name="path"/>.</summary>
    /// <remarks>Each tensor's bytes go from its storage to the file; no managed copy is made. F16 and BF16 are written as such.</remarks>
    /// <param name="path">The file to create or overwrite.</param>
    /// <param name="tensors">The tensors by name.</param>
    /// <param name="metadata">Optional string metadata stored under <c>__metadata__</c>.</param>
    public static void Save(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(tensors);
        EnsureLittleEndian();
        var names = tensors.Keys.OrderBy(n => n, StringComparer.Ordinal).ToArray();
        var header = new Dictionary<string, object>(StringComparer.Ordinal);
        if (metadata is { Count: > 0 })
        {
            header[MetadataKey] = metadata.ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
        }

        long offset = 0;
        foreach (var name in names)
        {
            if (name == MetadataKey)
            {
                throw new ArgumentException($"A tensor cannot be called {MetadataKey}.", nameof(tensors));
            }

            var t = tensors[name] ?? throw new ArgumentException($"Tensor {name} is null.", nameof(tensors));
            var dtype = DTypeOf(t.dtype, name);
            var bytes = t.numel() * ElementSize(dtype);
            header[name] = new Dictionary<string, object>
            {
                ["dtype"] = dtype.ToString().ToUpperInvariant(),
                ["shape"] = t.shape,
                ["data_offsets"] = new[] { offset, offset + bytes },
            };
            offset += bytes;
        }

        var json = JsonSerializer.SerializeToUtf8Bytes(header);
        var padded = (json.Length + 7) / 8 * 8; // align the data section to 8 bytes with trailing spaces, as the reference writer does
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16);
        Span<byte> lengthBytes = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(lengthBytes, (ulong)padded);
        stream.Write(lengthBytes);
        stream.Write(json);
        for (var p = json.Length; p < padded; p++)
        {
            stream.WriteByte((byte)' ');
        }

        foreach (var name in names)
        {
            using var scope = NewDisposeScope();
            var cpu = tensors[name].detach().cpu().contiguous();
            NativeStorage.WriteTo(cpu, stream);
        }
    }

    /// <summary>Reads and validates the header of <paramref name="path"/>.</summary>
    /// <exception cref="ModelFormatException">The file is not a valid safetensors file.</exception>
    public static SafetensorsHeader ReadHeader(string path)
    {
        using var stream = OpenRead(path);
        return ReadHeaderCore(stream, path);
    }

    /// <summary>Reads and validates a safetensors header from a seekable <paramref name="stream"/> positioned at its start.</summary>
    /// <param name="stream">The file's bytes; its length bounds every offset.</param>
    /// <param name="name">The name used in error messages (a file path).</param>
    /// <exception cref="ModelFormatException">The bytes are not a valid safetensors file.</exception>
    public static SafetensorsHeader ReadHeader(Stream stream, string? name)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.CanSeek)
        {
            throw new ArgumentException("The stream must be seekable.", nameof(stream));
        }

        return ReadHeaderCore(stream, name);
    }

    /// <summary>Reads every tensor of <paramref name="path"/> onto <paramref name="device"/> (CPU by default).</summary>
    /// <exception cref="ModelFormatException">The file is not a valid safetensors file.</exception>
    public static Dictionary<string, Tensor> Load(string path, Device? device = null) =>
        Load(path, new SafetensorsLoadOptions { Device = device });

    /// <summary>
    /// Reads the tensors of <paramref name="path"/>. The whole header is validated first; then each tensor is allocated
    /// with its own dtype (F16 and BF16 stay half precision unless <see cref="SafetensorsLoadOptions.DType"/> asks
    /// otherwise) and its bytes are read from the file straight into the tensor's storage, with no managed copy.
    /// </summary>
    /// <exception cref="ModelFormatException">The file is not a valid safetensors file.</exception>
    public static Dictionary<string, Tensor> Load(string path, SafetensorsLoadOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        EnsureLittleEndian();
        using var stream = OpenRead(path);
        var header = ReadHeaderCore(stream, path);
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var entry in header.Entries)
            {
                if (options.Filter is not null && !options.Filter(entry.Name))
                {
                    continue;
                }

                var tensor = empty(entry.Shape.ToArray(), ScalarTypeOf(entry.DType));
                try
                {
                    NativeStorage.ReadFrom(stream.SafeFileHandle, header.DataOffset + entry.Begin, tensor, path, entry.Name);
                    tensor = Convert(tensor, options.DType, options.Device);
                }
                catch
                {
                    tensor.Dispose();
                    throw;
                }

                result.Add(entry.Name, tensor);
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

    /// <summary>The TorchSharp element type of a safetensors dtype.</summary>
    public static ScalarType ScalarTypeOf(SafetensorsDType dtype) => dtype switch
    {
        SafetensorsDType.Bool => ScalarType.Bool,
        SafetensorsDType.U8 => ScalarType.Byte,
        SafetensorsDType.I8 => ScalarType.Int8,
        SafetensorsDType.I16 => ScalarType.Int16,
        SafetensorsDType.I32 => ScalarType.Int32,
        SafetensorsDType.I64 => ScalarType.Int64,
        SafetensorsDType.F16 => ScalarType.Float16,
        SafetensorsDType.BF16 => ScalarType.BFloat16,
        SafetensorsDType.F32 => ScalarType.Float32,
        SafetensorsDType.F64 => ScalarType.Float64,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "Unknown dtype."),
    };

    internal static Tensor Convert(Tensor tensor, ScalarType? dtype, Device? device)
    {
        if (dtype is { } type && tensor.dtype != type && tensor.is_floating_point())
        {
            var converted = tensor.to_type(type);
            tensor.Dispose();
            tensor = converted;
        }

        if (device is not null && device.type != DeviceType.CPU)
        {
            var moved = tensor.to(device);
            tensor.Dispose();
            tensor = moved;
        }

        return tensor;
    }

    private static FileStream OpenRead(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"Weights file {path} does not exist.", path);
        }

        return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
    }

    private static SafetensorsHeader ReadHeaderCore(Stream stream, string? path)
    {
        var fileLength = stream.Length;
        if (fileLength < 8)
        {
            throw new ModelFormatException(path, "header length", $"the file has {fileLength} bytes; a safetensors file starts with an 8-byte header length.");
        }

        Span<byte> lengthBytes = stackalloc byte[8];
        stream.ReadExactly(lengthBytes);
        var headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
        if (headerLength > (ulong)MaxHeaderLength)
        {
            throw new ModelFormatException(path, "header length", $"{headerLength} bytes exceeds the {MaxHeaderLength}-byte limit; the file is not safetensors or is corrupt.");
        }

        if ((long)headerLength > fileLength - 8)
        {
            throw new ModelFormatException(path, "header length", $"{headerLength} bytes, but only {fileLength - 8} bytes follow the length field (truncated file?).");
        }

        if (headerLength < 2)
        {
            throw new ModelFormatException(path, "header", $"{headerLength} bytes is too short for a JSON object.");
        }

        var json = new byte[headerLength];
        stream.ReadExactly(json);
        var dataOffset = 8 + (long)headerLength;
        var dataLength = fileLength - dataOffset;
        if (!System.Text.Unicode.Utf8.IsValid(json))
        {
            throw new ModelFormatException(path, "header", "not valid UTF-8 (the header must be UTF-8 JSON).");
        }

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json.AsMemory().TrimEnd((byte)' '));
        }
        catch (JsonException ex)
        {
            throw new ModelFormatException(path, "header", $"not valid JSON ({ex.Message}).", ex);
        }

        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new ModelFormatException(path, "header", $"expected a JSON object, found {document.RootElement.ValueKind}.");
            }

            var entries = new List<SafetensorsEntry>();
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (property.Name == MetadataKey)
                {
                    ReadMetadata(property.Value, metadata, path);
                    continue;
                }

                entries.Add(ReadEntry(property, path));
            }

            entries.Sort((a, b) => a.Begin != b.Begin ? a.Begin.CompareTo(b.Begin) : a.End.CompareTo(b.End));
            long expected = 0;
            foreach (var e in entries)
            {
                if (e.Begin != expected)
                {
                    throw new ModelFormatException(path, e.Name, e.Begin > expected
                        ? $"data_offsets start at {e.Begin} but the previous tensor ends at {expected}: the data section has a gap."
                        : $"data_offsets start at {e.Begin}, inside the previous tensor (ends at {expected}): tensors overlap.");
                }

                expected = e.End;
            }

            if (expected != dataLength)
            {
                throw new ModelFormatException(path, "data section", $"the tensors cover {expected} bytes but the data section has {dataLength} bytes (truncated file or trailing data).");
            }

            return new SafetensorsHeader(entries, metadata, dataOffset);
        }
    }

    private static void ReadMetadata(JsonElement element, Dictionary<string, string> metadata, string? path)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw new ModelFormatException(path, MetadataKey, "expected an object of strings.");
        }

        foreach (var item in element.EnumerateObject())
        {
            if (item.Value.ValueKind != JsonValueKind.String)
            {
                throw new ModelFormatException(path, $"{MetadataKey}.{item.Name}", $"expected a string, found {item.Value.ValueKind}.");
            }

            metadata[item.Name] = item.Value.GetString()!;
        }
    }

    private static SafetensorsEntry ReadEntry(JsonProperty property, string? path)
    {
        var name = property.Name;
        var value = property.Value;
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw new ModelFormatException(path, name, "expected an object with dtype, shape and data_offsets.");
        }

        if (!value.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String ||
            !TryParseDType(dtypeElement.GetString()!, out var dtype))
        {
            throw new ModelFormatException(path, $"{name}.dtype", $"expected one of {string.Join(", ", Enum.GetNames<SafetensorsDType>().Select(n => n.ToUpperInvariant()))}, found {(value.TryGetProperty("dtype", out var d) ? d.ToString() : "nothing")}.");
        }

        if (!value.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array)
        {
            throw new ModelFormatException(path, $"{name}.shape", "expected an array of non-negative integers.");
        }

        var shape = new List<long>();
        long count = 1;
        foreach (var dim in shapeElement.EnumerateArray())
        {
            if (dim.ValueKind != JsonValueKind.Number || !dim.TryGetInt64(out var n) || n < 0)
            {
                throw new ModelFormatException(path, $"{name}.shape", $"expected non-negative integers, found {dim}.");
            }

            shape.Add(n);
            try
            {
                count = checked(count * n);
            }
            catch (OverflowException ex)
            {
                throw new ModelFormatException(path, $"{name}.shape", "the element count overflows 64 bits.", ex);
            }
        }

        if (!value.TryGetProperty("data_offsets", out var offsets) || offsets.ValueKind != JsonValueKind.Array || offsets.GetArrayLength() != 2 ||
            !offsets[0].TryGetInt64(out var begin) || !offsets[1].TryGetInt64(out var end) || begin < 0 || end < begin)
        {
            throw new ModelFormatException(path, $"{name}.data_offsets", "expected [begin, end] with 0 <= begin <= end.");
        }

        long bytes;
        try
        {
            bytes = checked(count * ElementSize(dtype));
        }
        catch (OverflowException ex)
        {
            throw new ModelFormatException(path, $"{name}.shape", "the byte count overflows 64 bits.", ex);
        }

        if (end - begin != bytes)
        {
            throw new ModelFormatException(path, $"{name}.data_offsets", $"[{begin}, {end}] spans {end - begin} bytes but a {dtype.ToString().ToUpperInvariant()} tensor of shape [{string.Join(", ", shape)}] needs {bytes}.");
        }

        return new SafetensorsEntry(name, dtype, shape, begin, end);
    }

    private static bool TryParseDType(string text, out SafetensorsDType dtype)
    {
        // Exact, upper-case names only (the format's spelling); numbers and other casings are rejected.
        foreach (var candidate in Enum.GetValues<SafetensorsDType>())
        {
            if (string.Equals(candidate.ToString().ToUpperInvariant(), text, StringComparison.Ordinal))
            {
                dtype = candidate;
                return true;
            }
        }

        dtype = default;
        return false;
    }

    /// <summary>Bytes per element of <paramref name="dtype"/>.</summary>
    public static int ElementSize(SafetensorsDType dtype) => dtype switch
    {
        SafetensorsDType.Bool or SafetensorsDType.U8 or SafetensorsDType.I8 => 1,
        SafetensorsDType.I16 or SafetensorsDType.F16 or SafetensorsDType.BF16 => 2,
        SafetensorsDType.I32 or SafetensorsDType.F32 => 4,
        SafetensorsDType.I64 or SafetensorsDType.F64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "Unknown dtype."),
    };

    internal static SafetensorsDType DTypeOf(ScalarType type, string name) => type switch
    {
        ScalarType.Float32 => SafetensorsDType.F32,
        ScalarType.Float64 => SafetensorsDType.F64,
        ScalarType.Int64 => SafetensorsDType.I64,
        ScalarType.Int32 => SafetensorsDType.I32,
        ScalarType.Int16 => SafetensorsDType.I16,
        ScalarType.Int8 => SafetensorsDType.I8,
        ScalarType.Byte => SafetensorsDType.U8,
        ScalarType.Bool => SafetensorsDType.Bool,
        ScalarType.Float16 => SafetensorsDType.F16,
        ScalarType.BFloat16 => SafetensorsDType.BF16,
        _ => throw new ArgumentException($"Tensor {name} has dtype {type}, which safetensors cannot store.", nameof(type)),
    };

    private static void EnsureLittleEndian()
    {
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("MedVlp's safetensors code runs on little-endian machines only.");
        }
    }
}
