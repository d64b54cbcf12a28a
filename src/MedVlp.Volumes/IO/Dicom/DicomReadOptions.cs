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

    /// <summary>
    /// How MONOCHROME1 images are read: radiographs (CR, DX, MG) where the smallest value is displayed white. Default:
    /// <see cref="Monochrome1Handling.Invert"/>, so that a higher value is brighter as in every MONOCHROME2 image, CT and
    /// MR (what a viewer shows and what models trained on MONOCHROME2 X-rays expect). The inversion comes after the rescale
    /// and after <see cref="ApplyVoiWindow"/>'s window, within the output range pydicom's <c>apply_windowing</c> uses.
    /// </summary>
    public Monochrome1Handling Monochrome1 { get; init; } = Monochrome1Handling.Invert;

    /// <summary>
    /// Apply the file's VOI window (WindowCenter / WindowWidth with VOILUTFunction LINEAR, LINEAR_EXACT or SIGMOID) after
    /// the rescale, as pydicom's <c>apply_voi_lut</c> (<c>apply_windowing</c>): values then span the stored range
    /// (0 .. 2^BitsStored - 1, rescaled). A file without a window keeps its values; a VOI lookup table
    /// (VOILUTSequence) is not supported and fails the read. Default: false (modality values, such as Hounsfield units).
    /// </summary>
    public bool ApplyVoiWindow { get; init; }

    /// <summary>Which window to apply when a file lists several (0-based, as pydicom's <c>index</c>). Default 0.</summary>
    public int VoiWindowIndex { get; init; }
}

/// <summary>How <see cref="DicomSeriesReader"/> reads MONOCHROME1 images.</summary>
public enum Monochrome1Handling
{
    /// <summary>Invert: <c>v' = y_min + y_max - v</c> over the output range (the stored range through the rescale), so a
    /// higher value is brighter. The volume's <c>Monochrome1Inverted</c> property is <c>true</c>.</summary>
    Invert,

    /// <summary>Keep the values as stored (after the rescale): a higher value is darker on screen.</summary>
    AsStored,
}
