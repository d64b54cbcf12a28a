using MedVlp.Volumes.IO.Dicom;

namespace MedVlp.Volumes.IO;

/// <summary>Options for reading volumes.</summary>
public sealed class VolumeReadOptions
{
    private readonly long? _maxVoxels;

    /// <summary>The defaults.</summary>
    public static VolumeReadOptions Default { get; } = new();

    /// <summary>
    /// The resource budget of this read; <see langword="null"/> (default) uses <see cref="ResourceLimits.Default"/> at the
    /// time of the read.
    /// </summary>
    public ResourceLimits? Limits { get; init; }

    /// <summary>
    /// The largest number of values (voxels x components x frames) a reader will allocate. Headers that ask for more are
    /// rejected before any allocation. Setting it overrides <see cref="ResourceLimits.MaxVoxels"/> of <see cref="Limits"/>;
    /// reading it gives the effective value (default 2^28, see <see cref="ResourceLimits"/>).
    /// </summary>
    public long MaxVoxels
    {
        get => _maxVoxels ?? EffectiveLimits.MaxVoxels;
        init => _maxVoxels = value;
    }

    /// <summary>
    /// Folders besides the header's own from which a MetaImage <c>ElementDataFile</c> or NRRD <c>data file</c> may be read.
    /// Detached data files are otherwise resolved (symbolic links included) inside the header's folder only; names that
    /// leave it (absolute paths, <c>..</c>, links pointing out) are refused. Add folders only for inputs you trust.
    /// </summary>
    public IReadOnlyList<string> TrustedDataFolders { get; init; } = [];

    /// <summary>Read only the first frame of 4D/5D files (the others are skipped, not decoded). Default: false.</summary>
    public bool FirstFrameOnly { get; init; }

    /// <summary>
    /// For DICOM folders holding several series: the SeriesInstanceUID to read. <see langword="null"/> (default) reads the
    /// only series, and fails naming the series found when there are several. Ignored by the single-volume formats.
    /// </summary>
    public string? SeriesInstanceUid { get; init; }

    /// <summary>How DICOM slices are assembled into a volume (spacing tolerance, irregular spacing, subfolders).</summary>
    public DicomReadOptions Dicom { get; init; } = DicomReadOptions.Default;

    /// <summary>The limits in force: <see cref="Limits"/> or <see cref="ResourceLimits.Default"/>.</summary>
    internal ResourceLimits EffectiveLimits => Limits ?? ResourceLimits.Default;

    /// <summary>The most bytes a reader may inflate.</summary>
    internal long MaxDecompressedBytes => EffectiveLimits.MaxDecompressedBytes;
}
