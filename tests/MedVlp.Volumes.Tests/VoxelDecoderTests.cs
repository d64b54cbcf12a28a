using System.Buffers.Binary;
using MedVlp.Volumes.IO;

namespace MedVlp.Volumes.Tests;

/// <summary>The SIMD conversions of stored voxels against a plain scalar reading of the same bytes.</summary>
public sealed class VoxelDecoderTests
{
    [Theory]
    [InlineData(VoxelDataType.UInt8, false)]
    [InlineData(VoxelDataType.Int8, false)]
    [InlineData(VoxelDataType.Int16, false)]
    [InlineData(VoxelDataType.Int16, true)]
    [InlineData(VoxelDataType.UInt16, false)]
    [InlineData(VoxelDataType.UInt16, true)]
    [InlineData(VoxelDataType.Int32, true)]
    [InlineData(VoxelDataType.UInt32, false)]
    [InlineData(VoxelDataType.Int64, true)]
    [InlineData(VoxelDataType.UInt64, false)]
    [InlineData(VoxelDataType.Float32, true)]
    [InlineData(VoxelDataType.Float64, false)]
    public void ConvertEqualsScalarReading(VoxelDataType type, bool bigEndian)
    {
        const int count = 1000 + 7; // not a multiple of any vector width: the tail is exercised too
        var size = type.SizeInBytes();
        var bytes = new byte[count * size];
        new Random(42).NextBytes(bytes);
        if (type is VoxelDataType.Float32 or VoxelDataType.Float64)
        {
            for (var n = 0; n < count; n++)
            {
                var value = (n * 1.25) - 300;
                if (type == VoxelDataType.Float32)
                {
                    if (bigEndian)
                    {
                        BinaryPrimitives.WriteSingleBigEndian(bytes.AsSpan(4 * n), (float)value);
                    }
                    else
                    {
                        BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(4 * n), (float)value);
                    }
                }
                else
                {
                    BinaryPrimitives.WriteDoubleLittleEndian(bytes.AsSpan(8 * n), value);
                }
            }
        }

        var expected = new float[count];
        for (var n = 0; n < count; n++)
        {
            var s = bytes.AsSpan(n * size, size);
            expected[n] = type switch
            {
                VoxelDataType.UInt8 => s[0],
                VoxelDataType.Int8 => (sbyte)s[0],
                VoxelDataType.Int16 => bigEndian ? BinaryPrimitives.ReadInt16BigEndian(s) : BinaryPrimitives.ReadInt16LittleEndian(s),
                VoxelDataType.UInt16 => bigEndian ? BinaryPrimitives.ReadUInt16BigEndian(s) : BinaryPrimitives.ReadUInt16LittleEndian(s),
                VoxelDataType.Int32 => bigEndian ? BinaryPrimitives.ReadInt32BigEndian(s) : BinaryPrimitives.ReadInt32LittleEndian(s),
                VoxelDataType.UInt32 => bigEndian ? BinaryPrimitives.ReadUInt32BigEndian(s) : BinaryPrimitives.ReadUInt32LittleEndian(s),
                VoxelDataType.Int64 => bigEndian ? BinaryPrimitives.ReadInt64BigEndian(s) : BinaryPrimitives.ReadInt64LittleEndian(s),
                VoxelDataType.UInt64 => bigEndian ? BinaryPrimitives.ReadUInt64BigEndian(s) : BinaryPrimitives.ReadUInt64LittleEndian(s),
                VoxelDataType.Float32 => bigEndian ? BinaryPrimitives.ReadSingleBigEndian(s) : BinaryPrimitives.ReadSingleLittleEndian(s),
                VoxelDataType.Float64 => (float)BinaryPrimitives.ReadDoubleLittleEndian(s),
                _ => throw new ArgumentOutOfRangeException(nameof(type)),
            };
        }

        var actual = new float[count];
        VoxelDecoder.Convert((byte[])bytes.Clone(), actual, type, bigEndian);
        Assert.Equal(expected, actual);
    }
}
