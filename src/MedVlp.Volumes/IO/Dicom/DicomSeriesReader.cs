using System.Collections.Concurrent;
using System.Globalization;
using System.Runtime.ExceptionServices;

namespace MedVlp.Volumes.IO.Dicom;

/// <summary>One series found in a folder of DICOM files.</summary>
/// <param name="SeriesInstanceUid">The series' UID (empty when the files have none).</param>
/// <param name="Modality">The modality (CT, MR, ...), if given.</param>
/// <param name="Description">SeriesDescription, if given.</param>
/// <param name="Files">The image files of the series, in folder order.</param>
public sealed record DicomSeriesInfo(string SeriesInstanceUid, string? Modality, string? Description, IReadOnlyList<string> Files)
{
    /// <inheritdoc />
    public override string ToString() =>
        $"{(SeriesInstanceUid.Length == 0 ? "(no SeriesInstanceUID)" : SeriesInstanceUid)} [{Modality ?? "?"}] '{Description ?? ""}' ({Files.Count} file(s))";
}

/// <summary>A volume assembled from DICOM files, with what was noticed on the way.</summary>
/// <param name="Volume">The volume: i along DICOM columns, j along rows, k along the slice normal (sorted); RAS+ affine.</param>
/// <param name="SeriesInstanceUid">The series that was read.</param>
/// <param name="Files">The files in slice order (a multi-frame file appears once).</param>
/// <param name="Warnings">Things that did not stop reading but deserve attention (irregular spacing accepted, ordering by InstanceNumber, spacing not from positions, files skipped).</param>
public sealed record DicomSeriesResult(Volume Volume, string SeriesInstanceUid, IReadOnlyList<string> Files, IReadOnlyList<string> Warnings);

/// <summary>
/// Reads DICOM files, a folder of them, or one multi-frame file into a <see cref="Volume"/>: groups by
/// SeriesInstanceUID (never merging series), sorts slices along the slice normal (the cross product of the
/// ImageOrientationPatient rows and columns) by ImagePositionPatient, takes the slice spacing from the positions
/// (not SliceThickness), rejects duplicated positions, mixed orientations and mixed sizes, and builds the
/// LPS-to-RAS affine (oblique series keep their true affine).
/// </summary>
/// <remarks>
/// <para>Layout: i runs along the DICOM columns, j along the rows, k along the sorted slices (or frames); colour
/// images put their samples in frames (<see cref="Volume.FrameShape"/> = [SamplesPerPixel]). Values are
/// <c>stored * RescaleSlope + RescaleIntercept</c>, per frame, as pydicom's <c>pixel_array</c> scaled; stored
/// values are not masked to BitsStored, as neither pydicom 2.x nor dcm2niix masks them. MONOCHROME1 images (radiographs
/// whose minimum is displayed white) are inverted by default so that a higher value is brighter
/// (<see cref="DicomReadOptions.Monochrome1"/>), and <see cref="DicomReadOptions.ApplyVoiWindow"/> applies the file's VOI
/// window first, both as pydicom computes them. The slice spacing is the
/// distance between the first two slices along the normal, as dcm2niix computes it; a gantry tilt keeps its shear.</para>
/// <para>Supported: implicit VR little endian, explicit VR little and big endian, deflated explicit VR little
/// endian, RLE Lossless; a JPEG-family file fails with <c>FILE: TransferSyntaxUID: unsupported transfer syntax UID (name)</c>.
/// In a folder, files that are not DICOM images MedVlp decodes (not DICOM, no pixel data, JPEG family) are skipped and
/// listed in <see cref="DicomSeriesResult.Warnings"/>, or fail the read with <see cref="DicomReadOptions.Strict"/>.</para>
/// </remarks>
public static class DicomSeriesReader
{
    private const double OrientationTolerance = 1e-4;

    /// <summary>Reads a DICOM file or a folder holding one series (or the series chosen in the options).</summary>
    /// <exception cref="VolumeFormatException">The files are damaged, hold several series and none was chosen, or do not form a regular volume.</exception>
    public static Volume Read(string path, VolumeReadOptions? options = null, CancellationToken cancellationToken = default) =>
        ReadSeries(path, options, null, cancellationToken).Volume;

    /// <summary>Reads a DICOM file or a folder into a volume and reports warnings.</summary>
    /// <param name="path">A DICOM file (single or multi-frame) or a folder of DICOM files.</param>
    /// <param name="options">Reading options; <see cref="VolumeReadOptions.Dicom"/> chooses the series and spacing tolerance.</param>
    /// <param name="progress">Receives the fraction of files decoded, from 0 to 1.</param>
    /// <param name="cancellationToken">Cancels the read between files.</param>
    /// <exception cref="FileNotFoundException">Nothing exists at <paramref name="path"/>.</exception>
    /// <exception cref="VolumeFormatException">The files are damaged, hold several series and none was chosen, or do not form a regular volume.</exception>
    public static DicomSeriesResult ReadSeries(string path, VolumeReadOptions? options = null, IProgress<double>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        options ??= VolumeReadOptions.Default;
        if (Directory.Exists(path))
        {
            var files = ListFiles(path, options.Dicom.Recursive);
            return ReadFiles(files, path, options, progress, fromFolder: true, cancellationToken);
        }

        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"{path}: no such file or folder.", path);
        }

        return ReadFiles([path], path, options, progress, fromFolder: false, cancellationToken);
    }

    /// <summary>Reads an explicit list of DICOM files (one series, or the one chosen in the options) into a volume.</summary>
    /// <exception cref="VolumeFormatException">A file is damaged, or the files do not form one regular volume.</exception>
    public static DicomSeriesResult ReadSeries(IEnumerable<string> files, VolumeReadOptions? options = null, IProgress<double>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(files);
        var list = files.ToList();
        if (list.Count == 0)
        {
            throw new ArgumentException("No files were given.", nameof(files));
        }

        return ReadFiles(list, list[0], options ?? VolumeReadOptions.Default, progress, fromFolder: false, cancellationToken);
    }

    /// <summary>Lists the series in a folder (or a file) without decoding pixels.</summary>
    public static IReadOnlyList<DicomSeriesInfo> ListSeries(string path, bool recursive = false, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var files = Directory.Exists(path) ? ListFiles(path, recursive) : [path];
        var (images, _) = ParseAll(files, VolumeReadOptions.Default, skipNonImages: true, cancellationToken);
        return Group(images);
    }

    private static List<string> ListFiles(string folder, bool recursive)
    {
        var files = Directory.EnumerateFiles(folder, "*", recursive ? SearchOption.AllDirectories : SearchOption.TopDirectoryOnly)
            .Where(f => !Path.GetFileName(f).StartsWith('.'))
            .Order(StringComparer.Ordinal)
            .ToList();
        if (files.Count == 0)
        {
            throw new VolumeFormatException(folder, null, "the folder holds no files; expected DICOM files of one series.");
        }

        return files;
    }

    private static (List<DicomImage> Images, List<string> Skipped) ParseAll(IReadOnlyList<string> files, VolumeReadOptions options, bool skipNonImages, CancellationToken cancellationToken)
    {
        var images = new DicomImage?[files.Count];
        var skipped = new ConcurrentBag<string>();
        ForEach(files.Count, n =>
        {
            var file = files[n];
            if (skipNonImages && SafeFile.KindOf(file) is not (FileKind.Regular or FileKind.Unknown) and var kind)
            {
                skipped.Add($"{file}: {SafeFile.Describe(kind)}, not a regular file");
                return;
            }

            DicomFileHeader? header;
            try
            {
                header = DicomParser.ParseFile(file, nullIfNotDicom: skipNonImages, cancellationToken);
            }
            catch (VolumeFormatException ex) when (skipNonImages && ex.Field == "TransferSyntaxUID")
            {
                // A folder may hold files of a syntax MedVlp does not decode (JPEG family): read what can be read.
                skipped.Add($"{file}: {ex.Problem}");
                return;
            }

            if (header is null)
            {
                skipped.Add($"{file}: not a DICOM file");
                return;
            }

            if (skipNonImages && header.PixelDataOffset < 0)
            {
                skipped.Add($"{file}: a DICOM file without pixel data");
                return;
            }

            images[n] = DicomImage.From(header, options);
        }, cancellationToken);
        return ([.. images.Where(i => i is not null).Select(i => i!)], [.. skipped.Order(StringComparer.Ordinal)]);
    }

    /// <summary>Runs the body for 0..count-1 on the thread pool; the first failure surfaces as itself, not wrapped.</summary>
    private static void ForEach(int count, Action<int> body, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (count == 1)
        {
            body(0);
            return;
        }

        try
        {
            Parallel.For(0, count, new ParallelOptions { CancellationToken = cancellationToken }, body);
        }
        catch (AggregateException ex)
        {
            var first = ex.Flatten().InnerExceptions.OrderBy(e => e is VolumeFormatException ? 0 : 1).First();
            ExceptionDispatchInfo.Capture(first).Throw();
            throw;
        }
    }

    private static List<DicomSeriesInfo> Group(List<DicomImage> images) =>
        [.. images.GroupBy(i => i.SeriesInstanceUid ?? "", StringComparer.Ordinal)
            .Select(g => new DicomSeriesInfo(g.Key, g.First().Modality, g.First().SeriesDescription, [.. g.Select(i => i.Path)]))
            .OrderBy(s => s.SeriesInstanceUid, StringComparer.Ordinal)];

    private static DicomSeriesResult ReadFiles(IReadOnlyList<string> files, string source, VolumeReadOptions options, IProgress<double>? progress,
        bool fromFolder, CancellationToken cancellationToken)
    {
        var (images, skipped) = ParseAll(files, options, skipNonImages: fromFolder, cancellationToken);
        if (skipped.Count > 0 && options.Dicom.Strict)
        {
            throw new VolumeFormatException(source, null, $"{skipped.Count} file(s) are not DICOM images MedVlp decodes (DicomReadOptions.Strict): {string.Join("; ", skipped)}.");
        }

        var warnings = new List<string>(skipped.Select(s => "skipped " + s));
        if (images.Count == 0)
        {
            throw new VolumeFormatException(source, null, $"no DICOM images found ({skipped.Count} file(s) skipped: {string.Join("; ", skipped.Take(5))}).");
        }

        var series = Group(images);
        var wanted = options.SeriesInstanceUid;
        DicomSeriesInfo chosen;
        if (wanted is not null)
        {
            chosen = series.FirstOrDefault(s => s.SeriesInstanceUid == wanted)
                ?? throw new VolumeFormatException(source, "SeriesInstanceUID", $"no series {wanted} here; found: {string.Join("; ", series)}.");
        }
        else if (series.Count > 1)
        {
            throw new VolumeFormatException(source, "SeriesInstanceUID", $"holds {series.Count} series, which are never merged: {string.Join("; ", series)}. Choose one with VolumeReadOptions.SeriesInstanceUid (CLI: --series UID).");
        }
        else
        {
            chosen = series[0];
        }

        var members = images.Where(i => (i.SeriesInstanceUid ?? "") == chosen.SeriesInstanceUid).ToList();
        return Assemble(members, source, chosen.SeriesInstanceUid, options, warnings, progress, cancellationToken);
    }

    private readonly record struct Slice(DicomImage Image, int Frame, DicomFrameGeometry Geometry, double Distance);

    private static DicomSeriesResult Assemble(List<DicomImage> images, string source, string seriesUid, VolumeReadOptions options,
        List<string> warnings, IProgress<double>? progress, CancellationToken cancellationToken)
    {
        var first = images[0];
        CheckConsistent(images, source);
        var slices = new List<Slice>();
        foreach (var image in images)
        {
            if (images.Count > 1 && image.Frames > 1 && !image.HasPerFramePositions)
            {
                throw new VolumeFormatException(image.Path, "NumberOfFrames", $"is {image.Frames} without per-frame positions, in a series of {images.Count} files; cannot place its frames among the other files' slices. Read the file on its own.");
            }

            for (var f = 0; f < image.Frames; f++)
            {
                slices.Add(new Slice(image, f, image.FrameGeometry[f], 0));
            }
        }

        var orientation = first.FrameGeometry[0].Orientation;
        var pixelSpacing = first.FrameGeometry[0].PixelSpacing;
        if (pixelSpacing is not null && (pixelSpacing[0] <= 0 || pixelSpacing[1] <= 0))
        {
            throw new VolumeFormatException(first.Path, "PixelSpacing", $"is {pixelSpacing[0]}\\{pixelSpacing[1]}; expected positive values.");
        }

        var (rowCos, colCos, normal) = Directions(orientation, first.Path);
        var positioned = slices.All(s => s.Geometry.Position is not null);
        var singleStack = images.Count == 1 && !first.HasPerFramePositions;
        double[] kStep;
        if (slices.Count == 1 || singleStack)
        {
            var step = first.SpacingBetweenSlices is > 0 ? first.SpacingBetweenSlices.Value : first.SliceThickness is > 0 ? first.SliceThickness.Value : 1.0;
            if (slices.Count > 1)
            {
                warnings.Add($"{first.Path}: {first.Frames} frames without per-frame positions; the spacing between frames ({step.ToString(CultureInfo.InvariantCulture)} mm) comes from {(first.SpacingBetweenSlices is > 0 ? "SpacingBetweenSlices" : first.SliceThickness is > 0 ? "SliceThickness" : "nothing (1 mm assumed)")}, not from positions.");
            }

            kStep = [normal[0] * step, normal[1] * step, normal[2] * step];
        }
        else if (!positioned)
        {
            if (slices.Any(s => s.Geometry.Position is not null))
            {
                throw new VolumeFormatException(source, "ImagePositionPatient", "is present in some slices and missing in others; cannot order them.");
            }

            warnings.Add("no ImagePositionPatient: slices ordered by InstanceNumber; the spacing between slices is unknown (1 mm assumed).");
            slices = [.. slices.OrderBy(s => s.Image.InstanceNumber ?? long.MaxValue).ThenBy(s => s.Frame)];
            kStep = [normal[0], normal[1], normal[2]];
        }
        else
        {
            slices = [.. slices
                .Select(s => s with { Distance = Dot(s.Geometry.Position!, normal) })
                .OrderBy(s => s.Distance)
                .ThenBy(s => s.Image.InstanceNumber ?? 0)];
            kStep = CheckSpacing(slices, normal, source, options.Dicom, warnings);
        }

        var origin = slices[0].Geometry.Position ?? [0, 0, 0];
        double colSpacing = pixelSpacing?[1] ?? 1, rowSpacing = pixelSpacing?[0] ?? 1;
        if (pixelSpacing is null)
        {
            warnings.Add("no PixelSpacing: 1 mm assumed.");
        }

        // DICOM patient space is LPS; RAS = diag(-1, -1, 1) * LPS.
        double[] flip = [-1, -1, 1];
        var m = new double[16];
        for (var r = 0; r < 3; r++)
        {
            m[(r * 4) + 0] = flip[r] * rowCos[r] * colSpacing;
            m[(r * 4) + 1] = flip[r] * colCos[r] * rowSpacing;
            m[(r * 4) + 2] = flip[r] * kStep[r];
            m[(r * 4) + 3] = flip[r] * origin[r];
        }

        m[15] = 1;
        var affine = Affine.FromRowMajor(m);
        var sliceCount = slices.Count;
        var samples = first.SamplesPerPixel;
        var pixels = first.PixelsPerFrame;
        var total = pixels * sliceCount * samples;
        if (total > options.MaxVoxels || total > Array.MaxLength)
        {
            throw new VolumeFormatException(source, "Rows/Columns", $"{first.Columns}x{first.Rows} x {sliceCount} slice(s) x {samples} sample(s) = {total} voxels; the limit is {Math.Min(options.MaxVoxels, Array.MaxLength)} (ResourceLimits.MaxVoxels; CLI --max-voxels).");
        }

        var data = GC.AllocateUninitializedArray<float>((int)total);
        var slots = new Dictionary<DicomImage, int[]>();
        for (var n = 0; n < slices.Count; n++)
        {
            var s = slices[n];
            if (!slots.TryGetValue(s.Image, out var map))
            {
                slots[s.Image] = map = new int[s.Image.Frames];
            }

            map[s.Frame] = n;
        }

        var done = 0;
        var ordered = slices.Select(s => s.Image).Distinct().ToList();
        ForEach(ordered.Count, n =>
        {
            var image = ordered[n];
            DicomPixelDecoder.Decode(image, data, slots[image], pixels * sliceCount, cancellationToken);
            progress?.Report((double)Interlocked.Increment(ref done) / ordered.Count);
        }, cancellationToken);

        var (inverted, window) = ApplyDisplayTransforms(slices, data, pixels, options.Dicom);
        var g0 = first.FrameGeometry[0];
        var rescaleVaries = slices.Any(s => s.Geometry.Slope != g0.Slope || s.Geometry.Intercept != g0.Intercept);
        var properties = new Dictionary<string, string>
        {
            ["SeriesInstanceUID"] = seriesUid,
            ["StudyInstanceUID"] = first.StudyInstanceUid ?? "",
            ["SOPInstanceUID"] = first.SopInstanceUid ?? "",
            ["Modality"] = first.Modality ?? "",
            ["TransferSyntaxUID"] = first.Header.TransferSyntax.Uid,
            ["PhotometricInterpretation"] = first.Photometric,
            ["BitsAllocated"] = first.BitsAllocated.ToString(CultureInfo.InvariantCulture),
            ["BitsStored"] = first.BitsStored.ToString(CultureInfo.InvariantCulture),
            ["SliceCount"] = sliceCount.ToString(CultureInfo.InvariantCulture),
            ["FileCount"] = images.Count.ToString(CultureInfo.InvariantCulture),
            ["RescaleVaries"] = rescaleVaries ? "true" : "false",
        };
        if (inverted)
        {
            properties["Monochrome1Inverted"] = "true";
        }

        if (window is not null)
        {
            properties["VoiWindow"] = window;
        }

        if (warnings.Count > 0)
        {
            properties["Warnings"] = string.Join("\n", warnings);
        }

        var volume = new Volume(
            data,
            new VolumeShape(first.Columns, first.Rows, sliceCount),
            affine,
            samples > 1 ? [samples] : [],
            new Spacing(colSpacing, rowSpacing, Math.Sqrt(Dot(kStep, kStep))),
            new VolumeMetadata
            {
                SourcePath = source,
                Format = "dicom",
                SourceDataType = first.DataType,
                ScaleSlope = g0.Slope,
                ScaleIntercept = g0.Intercept,
                Description = first.SeriesDescription,
                Properties = properties,
            });
        return new DicomSeriesResult(volume, seriesUid, [.. ordered.Select(i => i.Path)], warnings);
    }

    /// <summary>
    /// The VOI window (<see cref="DicomReadOptions.ApplyVoiWindow"/>, as pydicom 2.x's <c>apply_windowing</c>) and the
    /// MONOCHROME1 inversion (<see cref="DicomReadOptions.Monochrome1"/>), in place on each slice's rescaled values.
    /// Both work in the output range [y_min, y_max]: the stored range (0 .. 2^BitsStored - 1, or the signed range) through
    /// the slice's rescale, as pydicom computes it; the inversion is <c>y_min + y_max - v</c> (PS3.3 C.7.6.3.1.2:
    /// MONOCHROME1's minimum is displayed white).
    /// </summary>
    /// <returns>Whether any slice was inverted, and the window applied (for the metadata), or null.</returns>
    private static (bool Inverted, string? Window) ApplyDisplayTransforms(List<Slice> slices, float[] data, long pixels, DicomReadOptions options)
    {
        var inverted = false;
        string? applied = null;
        for (var n = 0; n < slices.Count; n++)
        {
            var s = slices[n];
            var image = s.Image;
            var invert = options.Monochrome1 == Monochrome1Handling.Invert && image.Photometric == "MONOCHROME1";
            var window = options.ApplyVoiWindow ? VoiWindow(image, options.VoiWindowIndex) : null;
            if (!invert && window is null)
            {
                continue;
            }

            double yMin = image.Signed ? -Math.Pow(2, image.BitsStored - 1) : 0;
            double yMax = image.Signed ? Math.Pow(2, image.BitsStored - 1) - 1 : Math.Pow(2, image.BitsStored) - 1;
            (yMin, yMax) = ((yMin * s.Geometry.Slope) + s.Geometry.Intercept, (yMax * s.Geometry.Slope) + s.Geometry.Intercept);
            var range = yMax - yMin;
            var span = data.AsSpan((int)(n * pixels), (int)pixels);
            if (window is { } w)
            {
                applied ??= string.Create(CultureInfo.InvariantCulture, $"center {w.Center} width {w.Width} {w.Function}");
                if (w.Function == "SIGMOID")
                {
                    for (var i = 0; i < span.Length; i++)
                    {
                        span[i] = (float)((range / (1 + Math.Exp(-4 * (span[i] - w.Center) / w.Width))) + yMin);
                    }
                }
                else
                {
                    var (center, width) = w.Function == "LINEAR" ? (w.Center - 0.5, w.Width - 1) : (w.Center, w.Width);
                    double low = center - (width / 2), high = center + (width / 2);
                    for (var i = 0; i < span.Length; i++)
                    {
                        double v = span[i];
                        span[i] = (float)(v <= low ? yMin : v > high ? yMax : ((((v - center) / width) + 0.5) * range) + yMin);
                    }
                }
            }

            if (invert)
            {
                inverted = true;
                var sum = yMin + yMax;
                for (var i = 0; i < span.Length; i++)
                {
                    span[i] = (float)(sum - span[i]);
                }
            }
        }

        return (inverted, applied);
    }

    private readonly record struct Window(double Center, double Width, string Function);

    /// <summary>The window of <paramref name="image"/> pydicom's <c>apply_voi_lut</c> would use, or null when the file has none.</summary>
    private static Window? VoiWindow(DicomImage image, int index)
    {
        if (image.HasVoiLutTable)
        {
            throw new VolumeFormatException(image.Path, "VOILUTSequence", "holds a VOI lookup table, which MedVlp does not apply (pydicom's apply_voi_lut would prefer it to the window); read it without DicomReadOptions.ApplyVoiWindow.");
        }

        if (image.WindowCenter is null || image.WindowWidth is null)
        {
            return null;
        }

        if (image.Photometric is not ("MONOCHROME1" or "MONOCHROME2"))
        {
            throw new VolumeFormatException(image.Path, "PhotometricInterpretation", $"is {image.Photometric}; a VOI window applies to MONOCHROME1 and MONOCHROME2 images only.");
        }

        double Pick(double[] values, string field)
        {
            if (index < 0 || (values.Length > 1 && index >= values.Length))
            {
                throw new VolumeFormatException(image.Path, field, $"has {values.Length} value(s); DicomReadOptions.VoiWindowIndex {index} is out of range.");
            }

            return values.Length > 1 ? values[index] : values[0];
        }

        var center = Pick(image.WindowCenter, "WindowCenter");
        var width = Pick(image.WindowWidth, "WindowWidth");
        return image.VoiLutFunction switch
        {
            "LINEAR" when width < 1 => throw new VolumeFormatException(image.Path, "WindowWidth", $"is {width}; a LINEAR window needs a width of at least 1."),
            "LINEAR_EXACT" or "SIGMOID" when width <= 0 => throw new VolumeFormatException(image.Path, "WindowWidth", $"is {width}; a {image.VoiLutFunction} window needs a positive width."),
            "LINEAR" or "LINEAR_EXACT" or "SIGMOID" => new Window(center, width, image.VoiLutFunction),
            _ => throw new VolumeFormatException(image.Path, "VOILUTFunction", $"is '{image.VoiLutFunction}'; expected LINEAR, LINEAR_EXACT or SIGMOID."),
        };
    }

    private static void CheckConsistent(List<DicomImage> images, string source)
    {
        var first = images[0];
        foreach (var image in images.Skip(1))
        {
            string? problem = null;
            if (image.Rows != first.Rows || image.Columns != first.Columns)
            {
                problem = $"is {image.Columns}x{image.Rows} pixels while {Path.GetFileName(first.Path)} is {first.Columns}x{first.Rows}";
            }
            else if (image.SamplesPerPixel != first.SamplesPerPixel || image.BitsAllocated != first.BitsAllocated)
            {
                problem = $"has {image.SamplesPerPixel} sample(s) of {image.BitsAllocated} bits while {Path.GetFileName(first.Path)} has {first.SamplesPerPixel} of {first.BitsAllocated}";
            }

            if (problem is not null)
            {
                throw new VolumeFormatException(image.Path, "Rows/Columns", $"{problem}; a series of mixed sizes cannot form one volume.");
            }
        }

        var reference = first.FrameGeometry[0];
        foreach (var image in images)
        {
            foreach (var g in image.FrameGeometry)
            {
                if (!Close(g.Orientation, reference.Orientation, OrientationTolerance))
                {
                    throw new VolumeFormatException(image.Path, "ImageOrientationPatient", $"is [{Join(g.Orientation)}] while {Path.GetFileName(first.Path)} has [{Join(reference.Orientation)}]; a series of mixed orientations cannot form one volume (it may be a localizer or several stacks).");
                }

                if (!Close(g.PixelSpacing, reference.PixelSpacing, 1e-4 * (reference.PixelSpacing?.Max() ?? 1)))
                {
                    throw new VolumeFormatException(image.Path, "PixelSpacing", $"is [{Join(g.PixelSpacing)}] while {Path.GetFileName(first.Path)} has [{Join(reference.PixelSpacing)}]; a series of mixed pixel sizes cannot form one volume.");
                }
            }
        }

        _ = source;
    }

    private static double[] CheckSpacing(List<Slice> slices, double[] normal, string source, DicomReadOptions options, List<string> warnings)
    {
        var n = slices.Count;
        var steps = new double[n - 1];
        for (var k = 0; k < n - 1; k++)
        {
            steps[k] = slices[k + 1].Distance - slices[k].Distance;
            if (steps[k] < 1e-3)
            {
                var a = slices[k];
                var b = slices[k + 1];
                throw new VolumeFormatException(source, "ImagePositionPatient", $"{Describe(a)} and {Describe(b)} lie at the same position ({Join(a.Geometry.Position)}); the series holds duplicated slices (several echoes, time points or a repeated acquisition?). Pass the files of one stack to DicomSeriesReader.ReadSeries(files).");
            }
        }

        var sorted = steps.Order().ToArray();
        var median = sorted[sorted.Length / 2];
        var tolerance = Math.Max(options.SpacingTolerance * median, options.AbsoluteSpacingTolerance);
        var irregular = Enumerable.Range(0, n - 1).Where(k => Math.Abs(steps[k] - median) > tolerance).ToList();
        if (irregular.Count > 0)
        {
            var list = string.Join("; ", irregular.Take(10).Select(k => $"{Describe(slices[k])} -> {Describe(slices[k + 1])}: {steps[k].ToString("G6", CultureInfo.InvariantCulture)} mm"));
            var message = $"slices are not evenly spaced along the slice normal: the median step is {median.ToString("G6", CultureInfo.InvariantCulture)} mm, {irregular.Count} step(s) differ by more than {tolerance.ToString("G3", CultureInfo.InvariantCulture)} mm ({list}{(irregular.Count > 10 ? "; ..." : "")})";
            if (!options.AllowIrregularSpacing)
            {
                throw new VolumeFormatException(source, "ImagePositionPatient", message + ". Missing slices or a gap? Set DicomReadOptions.AllowIrregularSpacing to read it on a regular grid anyway.");
            }

            warnings.Add(message + "; the volume uses the median step.");
            var k0 = Enumerable.Range(0, n - 1).First(k => !irregular.Contains(k));
            var p = slices[k0].Geometry.Position!;
            var q = slices[k0 + 1].Geometry.Position!;
            return [q[0] - p[0], q[1] - p[1], q[2] - p[2]];
        }

        // As dcm2niix: the slice spacing is the distance between the first two slices, along the slice normal.
        // When the positions do not advance along the normal (gantry tilt), the mean step vector from first to
        // last slice is used instead, which keeps the tilt's shear in the affine (the true geometry, unresampled).
        var first = slices[0].Geometry.Position!;
        var second = slices[1].Geometry.Position!;
        var last = slices[^1].Geometry.Position!;
        double[] mean = [(last[0] - first[0]) / (n - 1), (last[1] - first[1]) / (n - 1), (last[2] - first[2]) / (n - 1)];
        var meanLength = Math.Sqrt(Dot(mean, mean));
        var along = Dot(mean, normal) / meanLength;
        if (along < 1 - 1e-4)
        {
            warnings.Add($"the slices advance at {(Math.Acos(Math.Min(1, along)) * 180 / Math.PI).ToString("G3", CultureInfo.InvariantCulture)} degrees to the slice normal (gantry tilt?); the affine keeps the shear.");
            return mean;
        }

        double[] d = [second[0] - first[0], second[1] - first[1], second[2] - first[2]];
        var spacing = Math.Sqrt(Dot(d, d));
        return [normal[0] * spacing, normal[1] * spacing, normal[2] * spacing];
    }

    private static (double[] Row, double[] Col, double[] Normal) Directions(double[]? iop, string path)
    {
        if (iop is null)
        {
            return ([1, 0, 0], [0, 1, 0], [0, 0, 1]);
        }

        double[] row = [iop[0], iop[1], iop[2]];
        double[] col = [iop[3], iop[4], iop[5]];
        var rn = Math.Sqrt(Dot(row, row));
        var cn = Math.Sqrt(Dot(col, col));
        if (rn < 0.5 || cn < 0.5 || Math.Abs(Dot(row, col)) > 1e-2 * rn * cn)
        {
            throw new VolumeFormatException(path, "ImageOrientationPatient", $"is [{Join(iop)}]; expected two orthogonal unit vectors.");
        }

        for (var n = 0; n < 3; n++)
        {
            row[n] /= rn;
            col[n] /= cn;
        }

        double[] normal = [(row[1] * col[2]) - (row[2] * col[1]), (row[2] * col[0]) - (row[0] * col[2]), (row[0] * col[1]) - (row[1] * col[0])];
        var nn = Math.Sqrt(Dot(normal, normal));
        return (row, col, [normal[0] / nn, normal[1] / nn, normal[2] / nn]);
    }

    private static string Describe(Slice s) =>
        s.Image.Frames > 1 ? $"{Path.GetFileName(s.Image.Path)} frame {s.Frame + 1}" : Path.GetFileName(s.Image.Path);

    private static double Dot(double[] a, double[] b) => (a[0] * b[0]) + (a[1] * b[1]) + (a[2] * b[2]);

    private static bool Close(double[]? a, double[]? b, double tolerance)
    {
        if (a is null || b is null)
        {
            return a is null && b is null;
        }

        return a.Length == b.Length && a.Zip(b).All(p => Math.Abs(p.First - p.Second) <= tolerance);
    }

    private static string Join(double[]? v) => v is null ? "none" : string.Join(", ", v.Select(x => x.ToString("G6", CultureInfo.InvariantCulture)));
}
