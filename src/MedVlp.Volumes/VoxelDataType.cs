namespace MedVlp.Volumes;

/// <summary>The element type a volume had on disk, before it was converted to <see cref="float"/> voxels.</summary>
public enum VoxelDataType
{
    /// <summary>Not known (for example a volume made in memory).</summary>
    Unknown = 0,
    /// <summary>Unsigned 8-bit integer.</summary>
    UInt8,
    /// <summary>Signed 8-bit integer.</summary>
    Int8,
    /// <summary>Unsigned 16-bit integer.</summary>
    UInt16,
    /// <summary>Signed 16-bit integer.</summary>
    Int16,
    /// <summary>Unsigned 32-bit integer.</summary>
    UInt32,
    /// <summary>Signed 32-bit integer.</summary>
    Int32,
    /// <summary>Unsigned 64-bit integer.</summary>
    UInt64,
    /// <summary>Signed 64-bit integer.</summary>
    Int64,
    /// <summary>32-bit IEEE float.</summary>
    Float32,
    /// <summary>64-bit IEEE float.</summary>
    Float64,
}

/// <summary>Helpers for <see cref="VoxelDataType"/>.</summary>
public static class VoxelDataTypeExtensions
{
    /// <summary>The size of one element in bytes.</summary>
    public static int SizeInBytes(this VoxelDataType type) => type switch
    {
        VoxelDataType.UInt8 or VoxelDataType.Int8 => 1,
        VoxelDataType.UInt16 or VoxelDataType.Int16 => 2,
        VoxelDataType.UInt32 or VoxelDataType.Int32 or VoxelDataType.Float32 => 4,
        VoxelDataType.UInt64 or VoxelDataType.Int64 or VoxelDataType.Float64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "The data type has no size."),
    };

    /// <summary>The NumPy name of the type (<c>uint8</c>, <c>int16</c>, <c>float32</c>, ...), as nibabel reports it.</summary>
    public static string ToNumPyName(this VoxelDataType type) => type switch
    {
        VoxelDataType.UInt8 => "uint8",
        VoxelDataType.Int8 => "int8",
        VoxelDataType.UInt16 => "uint16",
        VoxelDataType.Int16 => "int16",
        VoxelDataType.UInt32 => "uint32",
        VoxelDataType.Int32 => "int32",
        VoxelDataType.UInt64 => "uint64",
        VoxelDataType.Int64 => "int64",
        VoxelDataType.Float32 => "float32",
        VoxelDataType.Float64 => "float64",
        _ => "unknown",
    };
}
