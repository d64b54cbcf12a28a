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

    /// <summary>How DICOM files and folders are assembled into a volume (series choice, spacing tolerance).</summary>
    public DicomReadOptions Dicom { get; init; } = DicomReadOptions.Default;
}
