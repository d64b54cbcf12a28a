using System.Buffers;
using System.Buffers.Binary;
using System.Numerics.Tensors;
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
    public static void Convert(Span<byte> bytes, Span<float> dst, VoxelDataType type, bool bigEndian)
    {
        var swap = bigEndian == BitConverter.IsLittleEndian;
        switch (type)
        {
            case VoxelDataType.UInt8:
                TensorPrimitives.ConvertTruncating<byte, float>(bytes, dst);
                break;
            case VoxelDataType.Int8:
                TensorPrimitives.ConvertTruncating<sbyte, float>(MemoryMarshal.Cast<byte, sbyte>(bytes), dst);
                break;
            case VoxelDataType.Int16:
                TensorPrimitives.ConvertTruncating<short, float>(Swapped<short>(bytes, swap), dst);
                break;
            case VoxelDataType.UInt16:
                TensorPrimitives.ConvertTruncating<ushort, float>(Swapped<ushort>(bytes, swap), dst);
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
