namespace MedVlp.Volumes.IO.Dicom;

/// <summary>How a DICOM data set and its pixel data are encoded (the Transfer Syntax UID, PS3.5 section 10).</summary>
internal sealed record DicomTransferSyntax(string Uid, string Name, bool ExplicitVr, bool LittleEndian, bool Deflated, bool Encapsulated, bool Supported)
{
    public const string ImplicitVrLittleEndianUid = "1.2.840.10008.1.2";
    public const string ExplicitVrLittleEndianUid = "1.2.840.10008.1.2.1";
    public const string ExplicitVrBigEndianUid = "1.2.840.10008.1.2.2";
    public const string DeflatedExplicitVrLittleEndianUid = "1.2.840.10008.1.2.1.99";
    public const string RleLosslessUid = "1.2.840.10008.1.2.5";

    public static DicomTransferSyntax ImplicitVrLittleEndian { get; } = new(ImplicitVrLittleEndianUid, "Implicit VR Little Endian", false, true, false, false, true);

    public static DicomTransferSyntax ExplicitVrLittleEndian { get; } = new(ExplicitVrLittleEndianUid, "Explicit VR Little Endian", true, true, false, false, true);

    public static DicomTransferSyntax ExplicitVrBigEndian { get; } = new(ExplicitVrBigEndianUid, "Explicit VR Big Endian", true, false, false, false, true);

    public static DicomTransferSyntax DeflatedExplicitVrLittleEndian { get; } = new(DeflatedExplicitVrLittleEndianUid, "Deflated Explicit VR Little Endian", true, true, true, false, true);

    public static DicomTransferSyntax RleLossless { get; } = new(RleLosslessUid, "RLE Lossless", true, true, false, true, true);

    private static readonly Dictionary<string, string> CompressedNames = new(StringComparer.Ordinal)
    {
        ["1.2.840.10008.1.2.4.50"] = "JPEG Baseline (Process 1)",
        ["1.2.840.10008.1.2.4.51"] = "JPEG Extended (Process 2 and 4)",
        ["1.2.840.10008.1.2.4.57"] = "JPEG Lossless, Non-Hierarchical (Process 14)",
        ["1.2.840.10008.1.2.4.70"] = "JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14, Selection Value 1)",
        ["1.2.840.10008.1.2.4.80"] = "JPEG-LS Lossless",
        ["1.2.840.10008.1.2.4.81"] = "JPEG-LS Lossy (Near-Lossless)",
        ["1.2.840.10008.1.2.4.90"] = "JPEG 2000 Image Compression (Lossless Only)",
        ["1.2.840.10008.1.2.4.91"] = "JPEG 2000 Image Compression",
        ["1.2.840.10008.1.2.4.92"] = "JPEG 2000 Part 2 Multi-component Image Compression (Lossless Only)",
        ["1.2.840.10008.1.2.4.93"] = "JPEG 2000 Part 2 Multi-component Image Compression",
        ["1.2.840.10008.1.2.4.94"] = "JPIP Referenced",
        ["1.2.840.10008.1.2.4.95"] = "JPIP Referenced Deflate",
        ["1.2.840.10008.1.2.4.100"] = "MPEG2 Main Profile / Main Level",
        ["1.2.840.10008.1.2.4.101"] = "MPEG2 Main Profile / High Level",
        ["1.2.840.10008.1.2.4.102"] = "MPEG-4 AVC/H.264 High Profile / Level 4.1",
        ["1.2.840.10008.1.2.4.103"] = "MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1",
        ["1.2.840.10008.1.2.4.104"] = "MPEG-4 AVC/H.264 High Profile / Level 4.2 For 2D Video",
        ["1.2.840.10008.1.2.4.105"] = "MPEG-4 AVC/H.264 High Profile / Level 4.2 For 3D Video",
        ["1.2.840.10008.1.2.4.106"] = "MPEG-4 AVC/H.264 Stereo High Profile / Level 4.2",
        ["1.2.840.10008.1.2.4.107"] = "HEVC/H.265 Main Profile / Level 5.1",
        ["1.2.840.10008.1.2.4.108"] = "HEVC/H.265 Main 10 Profile / Level 5.1",
        ["1.2.840.10008.1.2.4.201"] = "High-Throughput JPEG 2000 Image Compression (Lossless Only)",
        ["1.2.840.10008.1.2.4.202"] = "High-Throughput JPEG 2000 with RPCL Options Image Compression (Lossless Only)",
        ["1.2.840.10008.1.2.4.203"] = "High-Throughput JPEG 2000 Image Compression",
    };

    /// <summary>The syntax for a UID; unknown and compressed ones come back with <see cref="Supported"/> false.</summary>
    public static DicomTransferSyntax FromUid(string uid) => uid switch
    {
        ImplicitVrLittleEndianUid => ImplicitVrLittleEndian,
        ExplicitVrLittleEndianUid => ExplicitVrLittleEndian,
        ExplicitVrBigEndianUid => ExplicitVrBigEndian,
        DeflatedExplicitVrLittleEndianUid => DeflatedExplicitVrLittleEndian,
        RleLosslessUid => RleLossless,
        _ => new DicomTransferSyntax(uid, CompressedNames.GetValueOrDefault(uid, "unknown transfer syntax"), true, true, false, true, false),
    };
}
