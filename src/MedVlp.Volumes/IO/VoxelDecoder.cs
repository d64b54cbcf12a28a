using System.Buffers;
using System.Buffers.Binary;
using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace MedVlp.Volumes.IO;

/// <summary>Converts raw stored voxels of any scalar type and byte order to float, fast.</summary>
internal static class VoxelDecoder
{
    private const int ChunkBytes = 1 << 20;

    /// <summary>
    /// Reads <paramref name="destination"/>.Length elements of <paramref name="type"/> from <paramref name="source"/>,
    /// converting to float, then applies <c>value * slope + intercept</c> unless that is the identity.
    /// </summary>
    /// <exception cref="VolumeFormatException">The stream ends before all voxels were read.</exception>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot loops: skip tier-0 code, which is ~10x slower with Vector<T>
    public static void ReadInto(Stream source, Span<float> destination, VoxelDataType type, bool bigEndian,
        double slope, double intercept, string? path, CancellationToken cancellationToken)
    {
        var size = type.SizeInBytes();
        var buffer = ArrayPool<byte>.Shared.Rent(ChunkBytes);
        try
        {
            var perChunk = ChunkBytes / size;
            var done = 0;
            while (done < destination.Length)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var count = Math.Min(perChunk, destination.Length - done);
                var bytes = buffer.AsSpan(0, count * size);
                var got = source.ReadAtLeast(bytes, bytes.Length, throwOnEndOfStream: false);
                if (got < bytes.Length)
                {
                    var expected = (long)destination.Length * size;
                    var have = ((long)done * size) + got;
                    throw new VolumeFormatException(path, "voxel data", $"truncated: expected {expected} bytes of voxel data, the file holds only {have}.");
                }

                Convert(bytes, destination.Slice(done, count), type, bigEndian);
                done += count;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        ApplyScaling(destination, slope, intercept);
    }

    /// <summary>Applies value * slope + intercept in place (SIMD) unless it is the identity.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot loops: skip tier-0 code, which is ~10x slower with Vector<T>
    public static void ApplyScaling(Span<float> values, double slope, double intercept)
    {
        if (slope == 1 && intercept == 0)
        {
            return;
        }

        if (slope != 1)
        {
            TensorPrimitives.Multiply(values, (float)slope, values);
        }

        if (intercept != 0)
        {
            TensorPrimitives.Add(values, (float)intercept, values);
        }
    }

    /// <summary>Converts one chunk of raw bytes (byte-swapped in place when needed) to float.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot loops: skip tier-0 code, which is ~10x slower with Vector<T>
    public static void Convert(Span<byte> bytes, Span<float> dst, VoxelDataType type, bool bigEndian)
    {
        var swap = bigEndian == BitConverter.IsLittleEndian;
        switch (type)
        {
            case VoxelDataType.UInt8:
                WidenUInt8(bytes, dst);
                break;
            case VoxelDataType.Int8:
                WidenInt8(MemoryMarshal.Cast<byte, sbyte>(bytes), dst);
                break;
            case VoxelDataType.Int16:
                WidenInt16(Swapped<short>(bytes, swap), dst);
                break;
            case VoxelDataType.UInt16:
                WidenUInt16(Swapped<ushort>(bytes, swap), dst);
                break;
            case VoxelDataType.Int32:
                TensorPrimitives.ConvertTruncating<int, float>(Swapped<int>(bytes, swap), dst);
                break;
            case VoxelDataType.UInt32:
                TensorPrimitives.ConvertTruncating<uint, float>(Swapped<uint>(bytes, swap), dst);
                break;
            case VoxelDataType.Int64:
                TensorPrimitives.ConvertTruncating<long, float>(Swapped<long>(bytes, swap), dst);
                break;
            case VoxelDataType.UInt64:
                TensorPrimitives.ConvertTruncating<ulong, float>(Swapped<ulong>(bytes, swap), dst);
                break;
            case VoxelDataType.Float32:
                MemoryMarshal.Cast<int, float>(Swapped<int>(bytes, swap)).CopyTo(dst);
                break;
            case VoxelDataType.Float64:
                TensorPrimitives.ConvertTruncating<double, float>(MemoryMarshal.Cast<long, double>(Swapped<long>(bytes, swap)), dst);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(type), type, "Unsupported voxel type.");
        }
    }

    // TensorPrimitives.ConvertTruncating has no vectorised path from 8- and 16-bit integers to float (it falls back to
    // a generic per-element conversion, measured ~15x slower on ch2better.nii.gz), so these widen with Vector<T>.

    /// <summary>uint8 to float with SIMD widening.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot loops: skip tier-0 code, which is ~10x slower with Vector<T>
    internal static void WidenUInt8(ReadOnlySpan<byte> src, Span<float> dst)
    {
        var i = 0;
        var w = Vector<byte>.Count;
        var q = Vector<int>.Count;
        for (; i <= src.Length - w; i += w)
        {
            Vector.Widen(new Vector<byte>(src[i..]), out var lo, out var hi);
            Vector.Widen(lo, out var a, out var b);
            Vector.Widen(hi, out var c, out var d);
            Vector.ConvertToSingle(Vector.AsVectorInt32(a)).CopyTo(dst[i..]);
            Vector.ConvertToSingle(Vector.AsVectorInt32(b)).CopyTo(dst[(i + q)..]);
            Vector.ConvertToSingle(Vector.AsVectorInt32(c)).CopyTo(dst[(i + (2 * q))..]);
            Vector.ConvertToSingle(Vector.AsVectorInt32(d)).CopyTo(dst[(i + (3 * q))..]);
        }

        for (; i < src.Length; i++)
        {
            dst[i] = src[i];
        }
    }

    /// <summary>int8 to float with SIMD widening.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot loops: skip tier-0 code, which is ~10x slower with Vector<T>
    internal static void WidenInt8(ReadOnlySpan<sbyte> src, Span<float> dst)
    {
        var i = 0;
        var w = Vector<sbyte>.Count;
        var q = Vector<int>.Count;
        for (; i <= src.Length - w; i += w)
        {
            Vector.Widen(new Vector<sbyte>(src[i..]), out var lo, out var hi);
            Vector.Widen(lo, out var a, out var b);
            Vector.Widen(hi, out var c, out var d);
            Vector.ConvertToSingle(a).CopyTo(dst[i..]);
            Vector.ConvertToSingle(b).CopyTo(dst[(i + q)..]);
            Vector.ConvertToSingle(c).CopyTo(dst[(i + (2 * q))..]);
            Vector.ConvertToSingle(d).CopyTo(dst[(i + (3 * q))..]);
        }

        for (; i < src.Length; i++)
        {
            dst[i] = src[i];
        }
    }

    /// <summary>int16 to float with SIMD widening.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot loops: skip tier-0 code, which is ~10x slower with Vector<T>
    internal static void WidenInt16(ReadOnlySpan<short> src, Span<float> dst)
    {
        var i = 0;
        var w = Vector<short>.Count;
        var q = Vector<int>.Count;
        for (; i <= src.Length - w; i += w)
        {
            Vector.Widen(new Vector<short>(src[i..]), out var a, out var b);
            Vector.ConvertToSingle(a).CopyTo(dst[i..]);
            Vector.ConvertToSingle(b).CopyTo(dst[(i + q)..]);
        }

        for (; i < src.Length; i++)
        {
            dst[i] = src[i];
        }
    }

    /// <summary>uint16 to float with SIMD widening.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot loops: skip tier-0 code, which is ~10x slower with Vector<T>
    internal static void WidenUInt16(ReadOnlySpan<ushort> src, Span<float> dst)
    {
        var i = 0;
        var w = Vector<ushort>.Count;
        var q = Vector<int>.Count;
        for (; i <= src.Length - w; i += w)
        {
            Vector.Widen(new Vector<ushort>(src[i..]), out var a, out var b);
            Vector.ConvertToSingle(Vector.AsVectorInt32(a)).CopyTo(dst[i..]);
            Vector.ConvertToSingle(Vector.AsVectorInt32(b)).CopyTo(dst[(i + q)..]);
        }

        for (; i < src.Length; i++)
        {
            dst[i] = src[i];
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot loops: skip tier-0 code, which is ~10x slower with Vector<T>
    private static Span<T> Swapped<T>(Span<byte> bytes, bool swap)
        where T : struct
    {
        if (swap)
        {
            switch (Marshal.SizeOf<T>())
            {
                case 2:
                    var s16 = MemoryMarshal.Cast<byte, short>(bytes);
                    BinaryPrimitives.ReverseEndianness(s16, s16);
                    break;
                case 4:
                    var s32 = MemoryMarshal.Cast<byte, int>(bytes);
                    BinaryPrimitives.ReverseEndianness(s32, s32);
                    break;
                case 8:
                    var s64 = MemoryMarshal.Cast<byte, long>(bytes);
                    BinaryPrimitives.ReverseEndianness(s64, s64);
                    break;
                default:
                    break;
            }
        }

        return MemoryMarshal.Cast<byte, T>(bytes);
    }
}
