namespace MedVlp.Volumes.IO.Dicom;

/// <summary>How DICOM files are assembled into a volume.</summary>
public sealed class DicomReadOptions
{
    /// <summary>The defaults.</summary>
    public static DicomReadOptions Default { get; } = new();

    /// <summary>
    /// Accept slices whose spacing along the slice normal is not uniform (missing slices, gaps): the volume then
    /// uses the median step and <see cref="DicomSeriesResult.Warnings"/> lists every irregular step. Default: false,
    /// irregular spacing is an error, since a regular grid cannot represent it.
    /// </summary>
    public bool AllowIrregularSpacing { get; init; }

    /// <summary>
    /// How far, relative to the median step, a step between neighbouring slices may differ from the median before
    /// it counts as a gap or irregular spacing. Default: 0.05 (5 %). The allowed difference is the larger of this
    /// and <see cref="AbsoluteSpacingTolerance"/>.
    /// </summary>
    public double SpacingTolerance { get; init; } = 0.05;

    /// <summary>
    /// The allowed difference between a step and the median step in millimetres, whatever the relative tolerance.
    /// Default: 0.1 mm, since many scanners write positions rounded to 0.1 mm. A missing slice still doubles a step.
    /// </summary>
    public double AbsoluteSpacingTolerance { get; init; } = 0.1;

    /// <summary>Also look in subfolders when given a folder. Default: false.</summary>
    public bool Recursive { get; init; }

    /// <summary>
    /// When reading a folder, fail on any file that is not a DICOM image MedVlp can decode (not DICOM, a DICOM file
    /// without pixel data such as a structured report, or a transfer syntax MedVlp does not decode, for example JPEG)
    /// instead of skipping it with a line in <see cref="DicomSeriesResult.Warnings"/>. Default: false. Files given one by
    /// one, and a single file, always fail.
    /// </summary>
    public bool Strict { get; init; }
}
