using MedVlp.Volumes.IO.Dicom;

namespace MedVlp.Volumes.IO;

/// <summary>Options for reading volumes.</summary>
public sealed class VolumeReadOptions
{
    /// <summary>The defaults.</summary>
    public static VolumeReadOptions Default { get; } = new();

    /// <summary>
    /// The largest number of voxels (all frames) a reader will allocate. Headers that ask for more are
    /// rejected before any allocation. Default: 2^31 - 1, the most a single .NET array holds.
    /// </summary>
    public long MaxVoxels { get; init; } = Array.MaxLength;

    /// <summary>Read only the first frame of 4D/5D files (the others are skipped, not decoded). Default: false.</summary>
    public bool FirstFrameOnly { get; init; }

    /// <summary>
    /// For DICOM folders holding several series: the SeriesInstanceUID to read. <see langword="null"/> (default) reads the
    /// only series, and fails naming the series found when there are several. Ignored by the single-volume formats.
    /// </summary>
    public string? SeriesInstanceUid { get; init; }

    /// <summary>How DICOM slices are assembled into a volume (spacing tolerance, irregular spacing, subfolders).</summary>
    public DicomReadOptions Dicom { get; init; } = DicomReadOptions.Default;
}
