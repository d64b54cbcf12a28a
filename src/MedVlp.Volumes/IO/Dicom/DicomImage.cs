using System.Globalization;

namespace MedVlp.Volumes.IO.Dicom;

/// <summary>Geometry and rescaling of one frame, from the classic attributes or the enhanced functional groups.</summary>
internal readonly record struct DicomFrameGeometry(double[]? Position, double[]? Orientation, double[]? PixelSpacing, double Slope, double Intercept);

/// <summary>The image attributes of one parsed DICOM file, validated.</summary>
internal sealed class DicomImage
{
    private DicomImage(DicomFileHeader header) => Header = header;

    public DicomFileHeader Header { get; }

    public string Path => Header.Path;

    public int Rows { get; private init; }

    public int Columns { get; private init; }

    public int Frames { get; private init; }

    public int SamplesPerPixel { get; private init; }

    public int BitsAllocated { get; private init; }

    public int BitsStored { get; private init; }

    public bool Signed { get; private init; }

    public int PlanarConfiguration { get; private init; }

    public string Photometric { get; private init; } = "";

    public string? SeriesInstanceUid { get; private init; }

    public string? StudyInstanceUid { get; private init; }

    public string? SopInstanceUid { get; private init; }

    public string? Modality { get; private init; }

    public string? SeriesDescription { get; private init; }

    public long? InstanceNumber { get; private init; }

    public double? SliceThickness { get; private init; }

    public double? SpacingBetweenSlices { get; private init; }

    /// <summary>WindowCenter values (VOI LUT module), or null.</summary>
    public double[]? WindowCenter { get; private init; }

    /// <summary>WindowWidth values (VOI LUT module), or null.</summary>
    public double[]? WindowWidth { get; private init; }

    /// <summary>VOILUTFunction (upper case; LINEAR when absent).</summary>
    public string VoiLutFunction { get; private init; } = "LINEAR";

    /// <summary>True when the file carries a VOILUTSequence (a VOI lookup table).</summary>
    public bool HasVoiLutTable { get; private init; }

    /// <summary>Per-frame geometry and rescaling (one entry per frame).</summary>
    public IReadOnlyList<DicomFrameGeometry> FrameGeometry { get; private init; } = [];

    /// <summary>True when the file carries a position per frame (enhanced multi-frame functional groups).</summary>
    public bool HasPerFramePositions { get; private init; }

    public long PixelsPerFrame => (long)Rows * Columns;

    /// <summary>Bytes of native (uncompressed) pixel data the attributes call for.</summary>
    public long ExpectedNativeBytes => BitsAllocated == 1
        ? ((PixelsPerFrame * Frames * SamplesPerPixel) + 7) / 8
        : Photometric == "YBR_FULL_422"
            ? PixelsPerFrame * Frames * 2 * (BitsAllocated / 8)
            : PixelsPerFrame * Frames * SamplesPerPixel * (BitsAllocated / 8);

    /// <summary>The on-disk element type of one sample.</summary>
    public VoxelDataType DataType => (BitsAllocated, Signed) switch
    {
        (1, _) => VoxelDataType.UInt8,
        (8, false) => VoxelDataType.UInt8,
        (8, true) => VoxelDataType.Int8,
        (16, false) => VoxelDataType.UInt16,
        (16, true) => VoxelDataType.Int16,
        (32, false) => VoxelDataType.UInt32,
        (32, true) => VoxelDataType.Int32,
        _ => VoxelDataType.Unknown,
    };

    /// <summary>Reads and checks the image attributes; throws when the file holds no decodable image.</summary>
    public static DicomImage From(DicomFileHeader header, VolumeReadOptions options)
    {
        var ds = header.Dataset;
        var path = header.Path;
        if (header.PixelDataOffset < 0)
        {
            throw new VolumeFormatException(path, "PixelData", "the file holds no pixel data (7FE0,0010); it is not an image (for example a structured report, RT plan or DICOMDIR).");
        }

        int Required(uint tag, int min, int max)
        {
            var v = ds.GetUInt16(tag) ?? throw new VolumeFormatException(path, DicomTag.Name(tag), "is missing; an image needs it.");
            return v >= min && v <= max ? v : throw new VolumeFormatException(path, DicomTag.Name(tag), $"is {v}; expected {min} to {max}.");
        }

        var rows = Required(DicomTag.Rows, 1, ushort.MaxValue);
        var columns = Required(DicomTag.Columns, 1, ushort.MaxValue);
        var bitsAllocated = Required(DicomTag.BitsAllocated, 1, 32);
        if (bitsAllocated is not (1 or 8 or 16 or 32))
        {
            throw new VolumeFormatException(path, "BitsAllocated", $"is {bitsAllocated}; expected 1, 8, 16 or 32.");
        }

        var bitsStored = ds.GetUInt16(DicomTag.BitsStored) ?? bitsAllocated;
        if (bitsStored < 1 || bitsStored > bitsAllocated)
        {
            throw new VolumeFormatException(path, "BitsStored", $"is {bitsStored}; expected 1 to BitsAllocated ({bitsAllocated}).");
        }

        var samples = ds.GetUInt16(DicomTag.SamplesPerPixel) ?? 1;
        if (samples is not (1 or 3 or 4))
        {
            throw new VolumeFormatException(path, "SamplesPerPixel", $"is {samples}; expected 1, 3 or 4.");
        }

        var pixelRep = ds.GetUInt16(DicomTag.PixelRepresentation) ?? 0;
        if (pixelRep is not (0 or 1))
        {
            throw new VolumeFormatException(path, "PixelRepresentation", $"is {pixelRep}; expected 0 (unsigned) or 1 (signed).");
        }

        var frames = ds.GetIntegerString(DicomTag.NumberOfFrames) ?? 1;
        if (frames < 1 || frames > int.MaxValue)
        {
            throw new VolumeFormatException(path, "NumberOfFrames", $"is {frames}; expected 1 to {int.MaxValue}.");
        }

        var photometric = ds.GetString(DicomTag.PhotometricInterpretation) ?? (samples == 1 ? "MONOCHROME2" : "RGB");
        if (ds.GetItems(DicomTag.ModalityLutSequence).Count > 0)
        {
            // The reader applies RescaleSlope/RescaleIntercept only; a lookup table read as a rescale would be a silent wrong value.
            throw new VolumeFormatException(path, "ModalityLUTSequence", "holds a modality lookup table, which MedVlp does not apply (only RescaleSlope/RescaleIntercept); convert the file (for example with dcmtk's dcmmkdir or pydicom's apply_modality_lut) first.");
        }

        var voxels = (long)rows * columns * frames * samples;
        if (voxels > options.MaxVoxels || voxels > Array.MaxLength)
        {
            throw new VolumeFormatException(path, "Rows/Columns/NumberOfFrames", $"ask for {columns}x{rows} pixels x {frames} frame(s) x {samples} sample(s) = {voxels} values; the limit is {Math.Min(options.MaxVoxels, Array.MaxLength)} (ResourceLimits.MaxVoxels; CLI --max-voxels).");
        }

        if (header.TransferSyntax.Encapsulated && voxels * Math.Max(1, bitsAllocated / 8) > header.SourceLength * 64)
        {
            throw new VolumeFormatException(path, "Rows/Columns/NumberOfFrames", $"ask for {voxels} values, more than the {header.SourceLength}-byte file can hold even RLE-compressed (at most 64x); the attributes are wrong.");
        }

        if (photometric == "YBR_FULL_422" && (samples != 3 || bitsAllocated != 8 || columns % 2 != 0) && !header.TransferSyntax.Encapsulated)
        {
            throw new VolumeFormatException(path, "PhotometricInterpretation", $"is YBR_FULL_422 with {samples} sample(s), {bitsAllocated} bits and {columns} columns; expected 3 samples of 8 bits and an even number of columns.");
        }

        // Check the pixel data can hold what the attributes ask for before anything per frame is allocated.
        var expectedNative = bitsAllocated == 1
            ? ((voxels) + 7) / 8
            : photometric == "YBR_FULL_422" ? (long)rows * columns * frames * 2 * (bitsAllocated / 8) : voxels * (bitsAllocated / 8);
        if (!header.TransferSyntax.Encapsulated)
        {
            if (header.PixelDataLength < 0)
            {
                throw new VolumeFormatException(path, "PixelData", $"has undefined length, but transfer syntax {header.TransferSyntax.Uid} stores native pixels with a defined length.");
            }

            if (header.PixelDataLength < expectedNative)
            {
                throw new VolumeFormatException(path, "PixelData", $"holds {header.PixelDataLength} bytes; Rows x Columns x NumberOfFrames x SamplesPerPixel x BitsAllocated ({rows}x{columns}x{frames}x{samples}x{bitsAllocated} bits) need {expectedNative}. The file is truncated or its attributes are wrong.");
            }
        }
        else if (header.PixelDataLength >= 0)
        {
            throw new VolumeFormatException(path, "PixelData", $"has a defined length, but transfer syntax {header.TransferSyntax.Uid} ({header.TransferSyntax.Name}) stores encapsulated fragments with undefined length.");
        }

        var image = new DicomImage(header)
        {
            Rows = rows,
            Columns = columns,
            Frames = (int)frames,
            SamplesPerPixel = samples,
            BitsAllocated = bitsAllocated,
            BitsStored = bitsStored,
            Signed = pixelRep == 1,
            PlanarConfiguration = samples > 1 ? ds.GetUInt16(DicomTag.PlanarConfiguration) ?? 0 : 0,
            Photometric = photometric,
            SeriesInstanceUid = ds.GetString(DicomTag.SeriesInstanceUid),
            StudyInstanceUid = ds.GetString(DicomTag.StudyInstanceUid),
            SopInstanceUid = ds.GetString(DicomTag.SopInstanceUid),
            Modality = ds.GetString(DicomTag.Modality),
            SeriesDescription = ds.GetString(DicomTag.SeriesDescription),
            InstanceNumber = ds.GetIntegerString(DicomTag.InstanceNumber),
            SliceThickness = ds.GetDecimals(DicomTag.SliceThickness)?[0],
            SpacingBetweenSlices = ds.GetDecimals(DicomTag.SpacingBetweenSlices)?[0],
            // The VOI attributes are read only when asked for: a malformed window must not stop a plain read.
            WindowCenter = options.Dicom.ApplyVoiWindow ? ds.GetDecimals(DicomTag.WindowCenter) : null,
            WindowWidth = options.Dicom.ApplyVoiWindow ? ds.GetDecimals(DicomTag.WindowWidth) : null,
            VoiLutFunction = options.Dicom.ApplyVoiWindow && (ds.GetString(DicomTag.VoiLutFunction) ?? "").Trim().ToUpperInvariant() is { Length: > 0 } f ? f : "LINEAR",
            HasVoiLutTable = ds.GetItems(DicomTag.VoiLutSequence).Count > 0,
            FrameGeometry = ReadFrameGeometry(ds, (int)frames, out var perFrame),
            HasPerFramePositions = perFrame,
        };

        return image;
    }

    private static DicomFrameGeometry[] ReadFrameGeometry(DicomDataset ds, int frames, out bool perFramePositions)
    {
        var slope = ds.GetDecimals(DicomTag.RescaleSlope)?[0] ?? 1;
        var intercept = ds.GetDecimals(DicomTag.RescaleIntercept)?[0] ?? 0;
        var classic = new DicomFrameGeometry(
            ds.GetDecimals(DicomTag.ImagePositionPatient, 3),
            ds.GetDecimals(DicomTag.ImageOrientationPatient, 6),
            // Projection radiographs (CR, DX) may give only the detector's ImagerPixelSpacing (PS3.3 C.8.11.4).
            ds.GetDecimals(DicomTag.PixelSpacing, 2) ?? ds.GetDecimals(DicomTag.ImagerPixelSpacing, 2),
            slope,
            intercept);

        var shared = ds.GetItems(DicomTag.SharedFunctionalGroups);
        var perFrame = ds.GetItems(DicomTag.PerFrameFunctionalGroups);
        perFramePositions = false;
        if (shared.Count == 0 && perFrame.Count == 0)
        {
            return Enumerable.Repeat(classic, frames).ToArray();
        }

        if (perFrame.Count > frames)
        {
            // Files cut down from a larger multi-frame (as pydicom's liver_1frame.dcm) keep extra items: use the first ones.
            perFrame = [.. perFrame.Take(frames)];
        }
        else if (perFrame.Count != 0 && perFrame.Count < frames)
        {
            throw new VolumeFormatException(ds.Path, "PerFrameFunctionalGroupsSequence", $"has {perFrame.Count} item(s); NumberOfFrames is {frames}.");
        }

        var sharedGroup = shared.Count > 0 ? shared[0] : null;
        var result = new DicomFrameGeometry[frames];
        var positions = 0;
        for (var f = 0; f < frames; f++)
        {
            var own = perFrame.Count > 0 ? perFrame[f] : null;
            double[]? Pick(uint sequence, uint tag, int count)
            {
                foreach (var group in new[] { own, sharedGroup })
                {
                    var items = group?.GetItems(sequence);
                    if (items is { Count: > 0 } && items[0].GetDecimals(tag, count) is { } v)
                    {
                        return v;
                    }
                }

                return null;
            }

            var position = Pick(DicomTag.PlanePositionSequence, DicomTag.ImagePositionPatient, 3);
            if (position is not null && own?.GetItems(DicomTag.PlanePositionSequence).Count > 0)
            {
                positions++;
            }

            result[f] = new DicomFrameGeometry(
                position ?? classic.Position,
                Pick(DicomTag.PlaneOrientationSequence, DicomTag.ImageOrientationPatient, 6) ?? classic.Orientation,
                Pick(DicomTag.PixelMeasuresSequence, DicomTag.PixelSpacing, 2) ?? classic.PixelSpacing,
                Pick(DicomTag.PixelValueTransformationSequence, DicomTag.RescaleSlope, 1)?[0] ?? slope,
                Pick(DicomTag.PixelValueTransformationSequence, DicomTag.RescaleIntercept, 1)?[0] ?? intercept);
        }

        perFramePositions = positions == frames && frames > 1;
        return result;
    }

    /// <summary>A short description for messages.</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{System.IO.Path.GetFileName(Path)} ({Columns}x{Rows}x{Frames})");
}
