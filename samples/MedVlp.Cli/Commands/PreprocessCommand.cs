using System.CommandLine;
using System.Globalization;
using MedVlp.Volumes;
using MedVlp.Volumes.IO;
using MedVlp.Volumes.IO.Nifti;
using MedVlp.Volumes.Transforms;

namespace MedVlp.Cli.Commands;

/// <summary>
/// <c>medvlp preprocess IN OUT.nii.gz [--preset NAME | --pipeline FILE | --orient CODE --spacing MM --window LO,HI
/// --rescale A,B --size N ...]</c>: runs a preprocessing pipeline and writes the result as NIfTI with its true affine.
/// </summary>
internal static class PreprocessCommand
{
    public static Command Create()
    {
        var input = new Argument<string>("input") { Description = "A volume: NIfTI, MetaImage, NRRD or a DICOM series (whatever medvlp can read)." };
        var output = new Argument<string>("output") { Description = "The NIfTI file to write (.nii or .nii.gz)." };
        var preset = new Option<string?>("--preset") { Description = $"A paper's preprocessing: {string.Join(", ", TransformPresets.Names)}." };
        var pipeline = new Option<string?>("--pipeline") { Description = "A pipeline JSON file (as written by --save-pipeline or a model package)." };
        var orient = new Option<string?>("--orient") { Description = "Reorient to axis codes such as RAS, LPS or SAR (no resampling)." };
        var spacing = new Option<string?>("--spacing") { Description = "Resample to this voxel size in mm: one value (isotropic) or three, comma-separated." };
        var longest = new Option<int?>("--resize-longest") { Description = "Resize (trilinear, align corners) so the longest side has N voxels, keeping the aspect ratio." };
        var window = new Option<string?>("--window") { Description = "Clamp intensities to LO,HI (for example -1000,1000 HU)." };
        var rescale = new Option<string?>("--rescale") { Description = "Map intensities linearly to A,B: the --window range if given, else the volume's min and max." };
        var zscore = new Option<bool>("--zscore") { Description = "Subtract the mean and divide by the standard deviation." };
        var size = new Option<string?>("--size") { Description = "Crop or pad, centred, to N voxels per axis (one value or three, comma-separated)." };
        var fill = new Option<double>("--fill") { Description = "The value of padded voxels and of voxels resampled from outside the input (default 0).", DefaultValueFactory = _ => 0 };
        var nearest = new Option<bool>("--nearest") { Description = "Nearest-neighbour instead of trilinear resampling (for label maps)." };
        var series = new Option<string?>("--series") { Description = "For a DICOM folder with several series: the SeriesInstanceUID." };
        var save = new Option<string?>("--save-pipeline") { Description = "Also write the pipeline that was applied as JSON to this file." };
        var command = new Command("preprocess", "Preprocess a volume with a preset, a pipeline file or single steps, and write NIfTI with its true affine.")
        {
            input, output, preset, pipeline, orient, spacing, longest, window, rescale, zscore, size, fill, nearest, series, save,
        };
        command.SetAction((parse, cancellationToken) => Task.FromResult(CliErrors.Run(() =>
        {
            var outPath = parse.GetValue(output)!;
            var bare = outPath.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? outPath[..^3] : outPath;
            if (!bare.EndsWith(".nii", StringComparison.OrdinalIgnoreCase))
            {
                throw new ArgumentException($"{outPath}: the output must end in .nii or .nii.gz.");
            }

            var steps = new List<VolumeTransform>();
            var fillValue = parse.GetValue(fill);
            var interpolation = parse.GetValue(nearest) ? Interpolation.Nearest : Interpolation.Trilinear;
            if (parse.GetValue(orient) is { } code)
            {
                steps.Add(new Reorient(code));
            }

            if (parse.GetValue(spacing) is { } sp)
            {
                var v = Numbers(sp, "--spacing", 1, 3);
                steps.Add(new ResampleToSpacing { Spacing = v.Length == 1 ? Spacing.Isotropic(v[0]) : new Spacing(v[0], v[1], v[2]), Interpolation = interpolation, FillValue = fillValue });
            }

            if (parse.GetValue(longest) is { } n)
            {
                steps.Add(new ResizeLongestSide { Size = n, Interpolation = interpolation, FillValue = fillValue });
            }

            double[]? windowRange = null;
            if (parse.GetValue(window) is { } w)
            {
                windowRange = Numbers(w, "--window", 2, 2);
                steps.Add(new Clamp(windowRange[0], windowRange[1]));
            }

            if (parse.GetValue(rescale) is { } r)
            {
                var to = Numbers(r, "--rescale", 2, 2);
                steps.Add(windowRange is null
                    ? new MinMaxNormalize { OutputMin = to[0], OutputMax = to[1] }
                    : new ScaleIntensityRange { InputMin = windowRange[0], InputMax = windowRange[1], OutputMin = to[0], OutputMax = to[1] });
            }

            if (parse.GetValue(zscore))
            {
                steps.Add(new ZScoreNormalize());
            }

            if (parse.GetValue(size) is { } s)
            {
                var v = Numbers(s, "--size", 1, 3);
                var shape = v.Length == 1 ? new VolumeShape((int)v[0], (int)v[0], (int)v[0]) : new VolumeShape((int)v[0], (int)v[1], (int)v[2]);
                steps.Add(new CropOrPad { Size = shape, FillValue = fillValue });
            }

            var presetName = parse.GetValue(preset);
            var pipelineFile = parse.GetValue(pipeline);
            if ((presetName is not null ? 1 : 0) + (pipelineFile is not null ? 1 : 0) + (steps.Count > 0 ? 1 : 0) != 1)
            {
                throw new ArgumentException("Give exactly one of --preset, --pipeline, or single steps (--orient, --spacing, --resize-longest, --window, --rescale, --zscore, --size).");
            }

            var chosen = presetName is not null ? TransformPresets.Get(presetName)
                : pipelineFile is not null ? TransformPipeline.Load(pipelineFile)
                : new TransformPipeline(steps, "custom");
            if (chosen.IsRandom)
            {
                throw new ArgumentException($"The pipeline \"{chosen.Name}\" has random (augmentation) steps; preprocess applies deterministic pipelines only.");
            }

            var volume = VolumeReader.Read(parse.GetValue(input)!, new VolumeReadOptions { SeriesInstanceUid = parse.GetValue(series) }, cancellationToken);
            var result = chosen.Apply(volume, null, cancellationToken);
            NiftiWriter.Write(result, outPath, new NiftiWriteOptions { Description = $"medvlp preprocess {chosen.Name}" }, cancellationToken);
            if (parse.GetValue(save) is { } savePath)
            {
                chosen.Save(savePath);
            }

            var stats = result.GetStatistics();
            Console.WriteLine(FormattableString.Invariant(
                $"{outPath}: {result.Shape}{(result.Frames > 1 ? $"x{result.Frames}" : "")} {result.Orientation} {result.Spacing}, values [{stats.Min:G6}, {stats.Max:G6}] ({chosen})"));
            return 0;
        })));
        return command;
    }

    private static double[] Numbers(string text, string option, int min, int max)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries);
        var values = new double[parts.Length];
        for (var n = 0; n < parts.Length; n++)
        {
            if (!double.TryParse(parts[n], NumberStyles.Float, CultureInfo.InvariantCulture, out values[n]) || !double.IsFinite(values[n]))
            {
                throw new ArgumentException($"{option}: \"{parts[n]}\" is not a number.");
            }
        }

        if (values.Length != min && values.Length != max)
        {
            throw new ArgumentException($"{option}: expected {(min == max ? $"{min}" : $"{min} or {max}")} comma-separated numbers, got \"{text}\".");
        }

        return values;
    }
}
