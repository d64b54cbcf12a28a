using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using MedVlp.Volumes;
using MedVlp.Volumes.IO;
using MedVlp.Volumes.IO.Dicom;
using Spectre.Console;

namespace MedVlp.Cli.Commands;

/// <summary><c>medvlp info PATH [--json]</c>: shape, geometry, orientation and value statistics of a volume.</summary>
internal static class InfoCommand
{
    public static Command Create()
    {
        var path = new Argument<string>("path") { Description = "A volume file (NIfTI .nii/.nii.gz/.hdr, MetaImage .mha/.mhd, NRRD .nrrd/.nhdr, DICOM) or a folder holding a DICOM series." };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of a table." };
        var series = new Option<string?>("--series") { Description = "The SeriesInstanceUID to read when a DICOM folder holds several series." };
        var strict = new Option<bool>("--strict") { Description = "For a DICOM folder: fail on files that are not DICOM images MedVlp decodes (JPEG, no pixel data, not DICOM) instead of skipping them with a warning." };
        var command = new Command("info", "Show the shape, spacing, affine, orientation and value range of a volume.")
        {
            path,
            json,
            series,
            strict,
        };
        command.SetAction(parse => CliErrors.Run(() =>
        {
            var options = new VolumeReadOptions { SeriesInstanceUid = parse.GetValue(series), Dicom = new DicomReadOptions { Strict = parse.GetValue(strict) } };
            var volume = VolumeReader.Read(parse.GetValue(path)!, options);
            if (volume.Metadata.Properties.TryGetValue("Warnings", out var warnings))
            {
                foreach (var warning in warnings.Split('\n'))
                {
                    Console.Error.WriteLine($"medvlp: warning: {warning}");
                }
            }

            var report = VolumeInfo.From(volume);
            if (parse.GetValue(json))
            {
                Console.WriteLine(report.ToJson());
            }
            else
            {
                report.WriteTable();
            }

            return 0;
        }));
        return command;
    }
}

/// <summary>What <c>medvlp info</c> reports about a volume.</summary>
internal sealed record VolumeInfo(
    string Path, string Format, int[] Shape, int Frames, int[] FrameShape, double[] Spacing, double[][] Affine,
    string Orientation, string Datatype, double Min, double Max, double Mean, long NaNCount)
{
    public static VolumeInfo From(Volume v)
    {
        var stats = v.GetStatistics(0);
        var a = v.Affine;
        return new VolumeInfo(
            v.Metadata.SourcePath ?? "",
            v.Metadata.Format,
            [v.Shape.X, v.Shape.Y, v.Shape.Z],
            v.Frames,
            [.. v.FrameShape],
            [v.Spacing.X, v.Spacing.Y, v.Spacing.Z],
            [.. Enumerable.Range(0, 4).Select(r => Enumerable.Range(0, 4).Select(c => a[r, c]).ToArray())],
            v.Orientation,
            v.Metadata.SourceDataType.ToNumPyName(),
            stats.Min,
            stats.Max,
            stats.Mean,
            stats.NaNCount);
    }

    public string ToJson()
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = false }))
        {
            w.WriteStartObject();
            w.WriteString("path", Path);
            w.WriteString("format", Format);
            WriteArray(w, "shape", Shape.Select(x => (double)x));
            w.WriteNumber("frames", Frames);
            WriteArray(w, "frame_shape", FrameShape.Select(x => (double)x));
            WriteArray(w, "spacing", Spacing);
            w.WriteStartArray("affine");
            foreach (var row in Affine)
            {
                w.WriteStartArray();
                foreach (var x in row)
                {
                    w.WriteNumberValue(x);
                }

                w.WriteEndArray();
            }

            w.WriteEndArray();
            w.WriteString("orientation", Orientation);
            w.WriteString("datatype", Datatype);
            WriteNumberOrNull(w, "min", Min);
            WriteNumberOrNull(w, "max", Max);
            WriteNumberOrNull(w, "mean", Mean);
            w.WriteNumber("nan_count", NaNCount);
            w.WriteEndObject();
        }

        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }

    public void WriteTable()
    {
        static string F(double x) => x.ToString("0.####", CultureInfo.InvariantCulture);
        var table = new Table().Border(TableBorder.Rounded).AddColumn("field").AddColumn("value");
        table.AddRow("path", Markup.Escape(Path));
        table.AddRow("format", Format);
        table.AddRow("shape", string.Join(" x ", Shape));
        table.AddRow("frames", Frames == 1 ? "1" : $"{Frames} ({string.Join(" x ", FrameShape)})");
        table.AddRow("spacing (mm)", string.Join(" x ", Spacing.Select(F)));
        table.AddRow("orientation", Orientation);
        table.AddRow("datatype", Datatype);
        table.AddRow("affine (voxel -> RAS+ mm)", string.Join("\n", Affine.Select(r => string.Join("  ", r.Select(x => F(x).PadLeft(10))))));
        table.AddRow("min / max / mean", $"{F(Min)} / {F(Max)} / {F(Mean)}" + (NaNCount > 0 ? $" ({NaNCount} NaN voxels left out)" : ""));
        AnsiConsole.Write(table);
    }

    private static void WriteNumberOrNull(Utf8JsonWriter w, string name, double value)
    {
        if (double.IsFinite(value))
        {
            w.WriteNumber(name, value);
        }
        else
        {
            w.WriteNull(name);
        }
    }

    private static void WriteArray(Utf8JsonWriter w, string name, IEnumerable<double> values)
    {
        w.WriteStartArray(name);
        foreach (var x in values)
        {
            w.WriteNumberValue(x);
        }

        w.WriteEndArray();
    }
}
