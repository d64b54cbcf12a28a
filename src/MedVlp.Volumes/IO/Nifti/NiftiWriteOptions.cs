namespace MedVlp.Volumes.IO.Nifti;

/// <summary>How <see cref="NiftiWriter"/> stores the voxels.</summary>
public enum NiftiStorageType
{
    /// <summary>32-bit float voxels, no scaling (the default; exact for every <see cref="Volume"/>).</summary>
    Float32 = 0,

    /// <summary>
    /// The element type the volume had on disk (<see cref="VolumeMetadata.SourceDataType"/>) with its
    /// <see cref="VolumeMetadata.ScaleSlope"/> / <see cref="VolumeMetadata.ScaleIntercept"/> as <c>scl_slope</c> /
    /// <c>scl_inter</c>: integer types store <c>round((value - inter) / slope)</c>. Falls back to float32 when the type is unknown.
    /// </summary>
    Original,
}

/// <summary>Options for <see cref="NiftiWriter"/>.</summary>
public sealed class NiftiWriteOptions
{
    /// <summary>The defaults: float32, NIfTI-1 unless an extent needs NIfTI-2, gzip decided by the file suffix.</summary>
    public static NiftiWriteOptions Default { get; } = new();

    /// <summary>The voxel element type on disk. Default: <see cref="NiftiStorageType.Float32"/>.</summary>
    public NiftiStorageType StorageType { get; init; } = NiftiStorageType.Float32;

    /// <summary>
    /// 1 or 2 to force NIfTI-1 or NIfTI-2; <see langword="null"/> (default) writes NIfTI-1 unless an extent exceeds
    /// 32767, which only NIfTI-2 can hold.
    /// </summary>
    public int? Version { get; init; }

    /// <summary>gzip the output; <see langword="null"/> (default) compresses when the path ends in <c>.gz</c>.</summary>
    public bool? Compress { get; init; }

    /// <summary>The <c>qform_code</c> and <c>sform_code</c> written with the affine. Default: 1 (scanner anatomical).</summary>
    public short XformCode { get; init; } = 1;

    /// <summary>The <c>descrip</c> field (at most 79 ASCII characters are kept); <see langword="null"/> uses the volume's description.</summary>
    public string? Description { get; init; }
}
