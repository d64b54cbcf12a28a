namespace MedVlp.Volumes.IO.Dicom;

/// <summary>How DICOM files are assembled into a volume.</summary>
public sealed class DicomReadOptions
{
    /// <summary>The defaults.</summary>
    public static DicomReadOptions Default { get; } = new();

    /// <summary>
    /// The series to read when a folder holds several. <see langword="null"/> (the default) reads the only series,
    /// and fails with a list of the series found when there are several: series are never merged.
    /// </summary>
    public string? SeriesInstanceUid { get; init; }

    /// <summary>
    /// Accept slices whose spacing along the slice normal is not uniform (missing slices, gaps): the volume then
    /// uses the median step and <see cref="DicomSeriesResult.Warnings"/> lists every irregular step. Default: false,
    /// irregular spacing is an error, since a regular grid cannot represent it.
    /// </summary>
    public bool AllowIrregularSpacing { get; init; }

    /// <summary>
    /// How far (relative to the median step) a step between neighbouring slices may differ from the median
    /// before it counts as a gap or irregular spacing. Default: 0.01 (1 %), with an absolute floor of 0.001 mm.
    /// </summary>
    public double SpacingTolerance { get; init; } = 0.01;

    /// <summary>Also look in subfolders when given a folder. Default: false.</summary>
    public bool Recursive { get; init; }
}
