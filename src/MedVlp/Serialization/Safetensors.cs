using System.Buffers.Binary;
using System.Runtime.InteropServices;
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
    /// <param name="path">The file to create or overwrite.</param>
    /// <param name="tensors">The tensors by name.</param>
    /// <param name="metadata">Optional string metadata stored under <c>__metadata__</c>.</param>
    public static void Save(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(tensors);
        EnsureLittleEndian();
        var names = tensors.Keys.OrderBy(n => n, StringComparer.Ordinal).ToArray();
        var blobs = new List<byte[]>(names.Length);
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

            var bytes = ToBytes(tensors[name], name, out var dtype);
            blobs.Add(bytes);
            header[name] = new Dictionary<string, object>
            {
                ["dtype"] = dtype.ToString().ToUpperInvariant(),
                ["shape"] = tensors[name].shape,
                ["data_offsets"] = new[] { offset, offset + bytes.Length },
            };
            offset += bytes.Length;
        }

        var json = JsonSerializer.SerializeToUtf8Bytes(header);
        var padded = (json.Length + 7) / 8 * 8; // align the data section to 8 bytes with trailing spaces, as the reference writer does
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None);
        Span<byte> lengthBytes = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(lengthBytes, (ulong)padded);
        stream.Write(lengthBytes);
        stream.Write(json);
        for (var p = json.Length; p < padded; p++)
        {
            stream.WriteByte((byte)' ');
        }

        foreach (var blob in blobs)
        {
            stream.Write(blob);
        }
    }

    /// <summary>Reads and validates the header of <paramref name="path"/>.</summary>
    /// <exception cref="ModelFormatException">The file is not a valid safetensors file.</exception>
    public static SafetensorsHeader ReadHeader(string path)
    {
        using var stream = OpenRead(path);
        return ReadHeader(stream, path);
    }

    /// <summary>Reads every tensor of <paramref name="path"/> onto <paramref name="device"/> (CPU by default).</summary>
    /// <exception cref="ModelFormatException">The file is not a valid safetensors file.</exception>
    public static Dictionary<string, Tensor> Load(string path, Device? device = null)
    {
        EnsureLittleEndian();
        using var stream = OpenRead(path);
        var header = ReadHeader(stream, path);
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var entry in header.Entries)
            {
                var bytes = new byte[entry.End - entry.Begin];
                stream.Seek(header.DataOffset + entry.Begin, SeekOrigin.Begin);
                stream.ReadExactly(bytes);
                var tensor = FromBytes(bytes, entry);
                if (device is not null && device.type != DeviceType.CPU)
                {
                    var moved = tensor.to(device);
                    tensor.Dispose();
                    tensor = moved;
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

    private static FileStream OpenRead(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"Weights file {path} does not exist.", path);
        }

        return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
    }

    private static SafetensorsHeader ReadHeader(FileStream stream, string path)
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

    private static void ReadMetadata(JsonElement element, Dictionary<string, string> metadata, string path)
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

    private static SafetensorsEntry ReadEntry(JsonProperty property, string path)
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

        if (bytes > Array.MaxLength)
        {
            throw new ModelFormatException(path, name, $"{bytes} bytes is larger than MedVlp reads in one piece.");
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

    private static Tensor FromBytes(byte[] bytes, SafetensorsEntry e)
    {
        var shape = e.Shape.ToArray();
        return e.DType switch
        {
            SafetensorsDType.F32 => tensor(MemoryMarshal.Cast<byte, float>(bytes).ToArray(), shape),
            SafetensorsDType.F64 => tensor(MemoryMarshal.Cast<byte, double>(bytes).ToArray(), shape),
            SafetensorsDType.I64 => tensor(MemoryMarshal.Cast<byte, long>(bytes).ToArray(), shape),
            SafetensorsDType.I32 => tensor(MemoryMarshal.Cast<byte, int>(bytes).ToArray(), shape),
            SafetensorsDType.I16 => tensor(MemoryMarshal.Cast<byte, short>(bytes).ToArray(), shape),
            SafetensorsDType.I8 => tensor(MemoryMarshal.Cast<byte, sbyte>(bytes).ToArray(), shape),
            SafetensorsDType.U8 => tensor(bytes, shape),
            SafetensorsDType.Bool => tensor(bytes.Select(b => b != 0).ToArray(), shape),
            SafetensorsDType.F16 => WithDType(MemoryMarshal.Cast<byte, Half>(bytes).ToArray().Select(h => (float)h).ToArray(), shape, ScalarType.Float16),
            SafetensorsDType.BF16 => WithDType(MemoryMarshal.Cast<byte, ushort>(bytes).ToArray().Select(b => BitConverter.Int32BitsToSingle(b << 16)).ToArray(), shape, ScalarType.BFloat16),
            _ => throw new ArgumentOutOfRangeException(nameof(e), e.DType, "Unknown dtype."),
        };
    }

    private static Tensor WithDType(float[] values, long[] shape, ScalarType type)
    {
        using var f32 = tensor(values, shape);
        return f32.to_type(type);
    }

    private static byte[] ToBytes(Tensor t, string name, out SafetensorsDType dtype)
    {
        using var scope = NewDisposeScope();
        var cpu = t.detach().cpu().contiguous();
        if (cpu.numel() == 0)
        {
            dtype = DTypeOf(cpu.dtype, name);
            return [];
        }

        switch (cpu.dtype)
        {
            case ScalarType.Float32:
                dtype = SafetensorsDType.F32;
                return MemoryMarshal.AsBytes(cpu.data<float>().ToArray().AsSpan()).ToArray();
            case ScalarType.Float64:
                dtype = SafetensorsDType.F64;
                return MemoryMarshal.AsBytes(cpu.data<double>().ToArray().AsSpan()).ToArray();
            case ScalarType.Int64:
                dtype = SafetensorsDType.I64;
                return MemoryMarshal.AsBytes(cpu.data<long>().ToArray().AsSpan()).ToArray();
            case ScalarType.Int32:
                dtype = SafetensorsDType.I32;
                return MemoryMarshal.AsBytes(cpu.data<int>().ToArray().AsSpan()).ToArray();
            case ScalarType.Int16:
                dtype = SafetensorsDType.I16;
                return MemoryMarshal.AsBytes(cpu.data<short>().ToArray().AsSpan()).ToArray();
            case ScalarType.Int8:
                dtype = SafetensorsDType.I8;
                return MemoryMarshal.AsBytes(cpu.data<sbyte>().ToArray().AsSpan()).ToArray();
            case ScalarType.Byte:
                dtype = SafetensorsDType.U8;
                return cpu.data<byte>().ToArray();
            case ScalarType.Bool:
                dtype = SafetensorsDType.Bool;
                return cpu.data<bool>().ToArray().Select(b => b ? (byte)1 : (byte)0).ToArray();
            case ScalarType.Float16:
                dtype = SafetensorsDType.F16;
                return MemoryMarshal.AsBytes(cpu.to_type(ScalarType.Float32).data<float>().ToArray().Select(f => (Half)f).ToArray().AsSpan()).ToArray();
            case ScalarType.BFloat16:
                dtype = SafetensorsDType.BF16;
                // Exact: every bfloat16 is a float32 whose low 16 bits are zero.
                return MemoryMarshal.AsBytes(cpu.to_type(ScalarType.Float32).data<float>().ToArray().Select(f => (ushort)(BitConverter.SingleToInt32Bits(f) >> 16)).ToArray().AsSpan()).ToArray();
            default:
                throw new ArgumentException($"Tensor {name} has dtype {cpu.dtype}, which safetensors cannot store.", nameof(t));
        }
    }

    private static SafetensorsDType DTypeOf(ScalarType type, string name) => type switch
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
