namespace MedVlp.Volumes;

/// <summary>Where a volume came from and what it was on disk. Immutable; derive a changed copy with <c>with</c>.</summary>
public sealed record VolumeMetadata
{
    /// <summary>An empty record for volumes made in memory.</summary>
    public static VolumeMetadata None { get; } = new();

    /// <summary>The file or folder the volume was read from, if any.</summary>
    public string? SourcePath { get; init; }

    /// <summary>The format it was read from: <c>nifti1</c>, <c>nifti2</c>, <c>dicom</c>, <c>metaimage</c>, <c>nrrd</c>, or <c>memory</c>.</summary>
    public string Format { get; init; } = "memory";

    /// <summary>The element type on disk before conversion to float.</summary>
    public VoxelDataType SourceDataType { get; init; } = VoxelDataType.Unknown;

    /// <summary>The slope that was applied to stored values (value = stored * slope + intercept).</summary>
    public double ScaleSlope { get; init; } = 1;

    /// <summary>The intercept that was applied to stored values.</summary>
    public double ScaleIntercept { get; init; }

    /// <summary>Free-form description from the header (NIfTI <c>descrip</c>, DICOM SeriesDescription, ...).</summary>
    public string? Description { get; init; }

    /// <summary>Further format-specific facts (for example <c>qform_code</c>, <c>SeriesInstanceUID</c>).</summary>
    public IReadOnlyDictionary<string, string> Properties { get; init; } = new Dictionary<string, string>();
}
