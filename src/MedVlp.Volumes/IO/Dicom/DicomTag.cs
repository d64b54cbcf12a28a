namespace MedVlp.Volumes.IO.Dicom;

/// <summary>The (group, element) tags MedVlp decodes, as <c>group &lt;&lt; 16 | element</c>, with their value representations.</summary>
internal static class DicomTag
{
    public const uint TransferSyntaxUid = 0x0002_0010;
    public const uint SopInstanceUid = 0x0008_0018;
    public const uint Modality = 0x0008_0060;
    public const uint SeriesDescription = 0x0008_103E;
    public const uint SliceThickness = 0x0018_0050;
    public const uint SpacingBetweenSlices = 0x0018_0088;
    public const uint StudyInstanceUid = 0x0020_000D;
    public const uint SeriesInstanceUid = 0x0020_000E;
    public const uint InstanceNumber = 0x0020_0013;
    public const uint ImagePositionPatient = 0x0020_0032;
    public const uint ImageOrientationPatient = 0x0020_0037;
    public const uint SamplesPerPixel = 0x0028_0002;
    public const uint PhotometricInterpretation = 0x0028_0004;
    public const uint PlanarConfiguration = 0x0028_0006;
    public const uint NumberOfFrames = 0x0028_0008;
    public const uint Rows = 0x0028_0010;
    public const uint Columns = 0x0028_0011;
    public const uint PixelSpacing = 0x0028_0030;
    public const uint ImagerPixelSpacing = 0x0018_1164;
    public const uint BitsAllocated = 0x0028_0100;
    public const uint BitsStored = 0x0028_0101;
    public const uint HighBit = 0x0028_0102;
    public const uint PixelRepresentation = 0x0028_0103;
    public const uint RescaleIntercept = 0x0028_1052;
    public const uint RescaleSlope = 0x0028_1053;
    public const uint WindowCenter = 0x0028_1050;
    public const uint WindowWidth = 0x0028_1051;
    public const uint VoiLutFunction = 0x0028_1056;
    public const uint ModalityLutSequence = 0x0028_3000;
    public const uint VoiLutSequence = 0x0028_3010;
    public const uint PresentationLutShape = 0x2050_0020;
    public const uint SharedFunctionalGroups = 0x5200_9229;
    public const uint PerFrameFunctionalGroups = 0x5200_9230;
    public const uint PlanePositionSequence = 0x0020_9113;
    public const uint PlaneOrientationSequence = 0x0020_9116;
    public const uint PixelMeasuresSequence = 0x0028_9110;
    public const uint PixelValueTransformationSequence = 0x0028_9145;
    public const uint PixelData = 0x7FE0_0010;
    public const uint FloatPixelData = 0x7FE0_0008;
    public const uint DoubleFloatPixelData = 0x7FE0_0009;
    public const uint Item = 0xFFFE_E000;
    public const uint ItemDelimitation = 0xFFFE_E00D;
    public const uint SequenceDelimitation = 0xFFFE_E0DD;

    /// <summary>The value representation of a tag MedVlp keeps, for implicit-VR data sets; 0 when not kept.</summary>
    public static ushort KnownVr(uint tag) => tag switch
    {
        TransferSyntaxUid or SopInstanceUid or StudyInstanceUid or SeriesInstanceUid => Vr.UI,
        Modality or PhotometricInterpretation or VoiLutFunction or PresentationLutShape => Vr.CS,
        SeriesDescription => Vr.LO,
        SliceThickness or SpacingBetweenSlices or ImagePositionPatient or ImageOrientationPatient or PixelSpacing or ImagerPixelSpacing
            or RescaleIntercept or RescaleSlope or WindowCenter or WindowWidth => Vr.DS,
        InstanceNumber or NumberOfFrames => Vr.IS,
        SamplesPerPixel or PlanarConfiguration or Rows or Columns or BitsAllocated or BitsStored or HighBit or PixelRepresentation => Vr.US,
        SharedFunctionalGroups or PerFrameFunctionalGroups or PlanePositionSequence or PlaneOrientationSequence
            or PixelMeasuresSequence or PixelValueTransformationSequence or ModalityLutSequence or VoiLutSequence => Vr.SQ,
        _ => 0,
    };

    /// <summary>Formats a tag as <c>(gggg,eeee)</c>.</summary>
    public static string Format(uint tag) => $"({tag >> 16:X4},{tag & 0xFFFF:X4})";

    /// <summary>The keyword of a kept tag, for messages.</summary>
    public static string Name(uint tag) => tag switch
    {
        TransferSyntaxUid => "TransferSyntaxUID",
        SopInstanceUid => "SOPInstanceUID",
        Modality => "Modality",
        SeriesDescription => "SeriesDescription",
        SliceThickness => "SliceThickness",
        SpacingBetweenSlices => "SpacingBetweenSlices",
        StudyInstanceUid => "StudyInstanceUID",
        SeriesInstanceUid => "SeriesInstanceUID",
        InstanceNumber => "InstanceNumber",
        ImagePositionPatient => "ImagePositionPatient",
        ImageOrientationPatient => "ImageOrientationPatient",
        SamplesPerPixel => "SamplesPerPixel",
        PhotometricInterpretation => "PhotometricInterpretation",
        PlanarConfiguration => "PlanarConfiguration",
        NumberOfFrames => "NumberOfFrames",
        Rows => "Rows",
        Columns => "Columns",
        PixelSpacing => "PixelSpacing",
        ImagerPixelSpacing => "ImagerPixelSpacing",
        BitsAllocated => "BitsAllocated",
        BitsStored => "BitsStored",
        HighBit => "HighBit",
        PixelRepresentation => "PixelRepresentation",
        RescaleIntercept => "RescaleIntercept",
        RescaleSlope => "RescaleSlope",
        WindowCenter => "WindowCenter",
        WindowWidth => "WindowWidth",
        VoiLutFunction => "VOILUTFunction",
        ModalityLutSequence => "ModalityLUTSequence",
        VoiLutSequence => "VOILUTSequence",
        PresentationLutShape => "PresentationLUTShape",
        PixelData => "PixelData",
        _ => Format(tag),
    };
}

/// <summary>Two-letter value representations packed as <c>first &lt;&lt; 8 | second</c>.</summary>
internal static class Vr
{
    public const ushort AE = ('A' << 8) | 'E';
    public const ushort CS = ('C' << 8) | 'S';
    public const ushort DS = ('D' << 8) | 'S';
    public const ushort IS = ('I' << 8) | 'S';
    public const ushort LO = ('L' << 8) | 'O';
    public const ushort OB = ('O' << 8) | 'B';
    public const ushort OD = ('O' << 8) | 'D';
    public const ushort OF = ('O' << 8) | 'F';
    public const ushort OL = ('O' << 8) | 'L';
    public const ushort OV = ('O' << 8) | 'V';
    public const ushort OW = ('O' << 8) | 'W';
    public const ushort SQ = ('S' << 8) | 'Q';
    public const ushort SV = ('S' << 8) | 'V';
    public const ushort UC = ('U' << 8) | 'C';
    public const ushort UI = ('U' << 8) | 'I';
    public const ushort UN = ('U' << 8) | 'N';
    public const ushort UR = ('U' << 8) | 'R';
    public const ushort US = ('U' << 8) | 'S';
    public const ushort UT = ('U' << 8) | 'T';
    public const ushort UV = ('U' << 8) | 'V';

    /// <summary>VRs whose explicit encoding has two reserved bytes and a 32-bit length (PS3.5 7.1.2).</summary>
    public static bool HasLongLength(ushort vr) =>
        vr is OB or OD or OF or OL or OV or OW or SQ or SV or UC or UN or UR or UT or UV;

    /// <summary>True for two upper-case ASCII letters.</summary>
    public static bool IsValid(ushort vr) => (vr >> 8) is >= 'A' and <= 'Z' && (vr & 0xFF) is >= 'A' and <= 'Z';

    public static string ToString(ushort vr) => IsValid(vr) ? $"{(char)(vr >> 8)}{(char)(vr & 0xFF)}" : $"0x{vr:X4}";
}
