using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using MedVlp.Serialization;
using MedVlp.Weights;
using Spectre.Console;
using static TorchSharp.torch;

namespace MedVlp.Cli.Commands;

/// <summary><c>medvlp weights inspect|convert</c>: look into released checkpoints and turn them into safetensors with MedVlp names.</summary>
internal static class WeightsCommand
{
    public static Command Create()
    {
        var command = new Command("weights", "Inspect released checkpoints (safetensors, sharded safetensors, torch.save .pt/.pth/.bin) and convert them to safetensors with MedVlp names.");
        command.Subcommands.Add(Inspect());
        command.Subcommands.Add(Convert());
        return command;
    }

    private static Command Inspect()
    {
        var file = new Argument<string>("file") { Description = "A .safetensors file, a model.safetensors.index.json, or a torch.save checkpoint (.pt, .pth, .bin)." };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of a table." };
        var command = new Command("inspect", "Show the format, tensors (dtype, shape), total size and detected layout of a weight file.") { file, json };
        command.SetAction(parse => CliErrors.Run(() =>
        {
            var info = WeightFile.Inspect(parse.GetValue(file)!);
            if (parse.GetValue(json))
            {
                Console.WriteLine(ToJson(info));
                return 0;
            }

            var table = new Table().AddColumn("tensor").AddColumn("dtype").AddColumn(new TableColumn("shape").RightAligned());
            foreach (var t in info.Tensors)
            {
                table.AddRow(Markup.Escape(t.Name), t.DType.ToString(), Markup.Escape("[" + string.Join(", ", t.Shape) + "]"));
            }

            AnsiConsole.Write(table);
            AnsiConsole.MarkupLine($"[bold]{Markup.Escape(info.Path)}[/]: {info.Format}, {info.Tensors.Count} tensors, " +
                $"{info.Tensors.Sum(t => t.ElementCount).ToString("N0", CultureInfo.InvariantCulture)} elements, {info.TotalBytes.ToString("N0", CultureInfo.InvariantCulture)} bytes, " +
                $"layout: {Markup.Escape(info.Layout?.Name ?? "not recognised")}");
            return 0;
        }));
        return command;
    }

    private static Command Convert()
    {
        var input = new Argument<string>("in") { Description = "The checkpoint to convert (any format `weights inspect` reads)." };
        var output = new Argument<string>("out") { Description = "The .safetensors file to write." };
        var layout = new Option<string?>("--layout") { Description = $"Source layout to rename from ({string.Join(", ", WeightLayouts.All.Select(l => l.Name))}); default: detected, or names kept." };
        var strip = new Option<string?>("--strip-prefix") { Description = "Remove this prefix from every name first (for example model.); names without it are dropped." };
        var dtype = new Option<string?>("--dtype") { Description = "Convert floating-point tensors: f32, f16 or bf16." };
        var command = new Command("convert", "Convert a checkpoint to safetensors with MedVlp names.") { input, output, layout, strip, dtype };
        command.SetAction(parse => CliErrors.Run(() =>
        {
            var inPath = parse.GetValue(input)!;
            var outPath = parse.GetValue(output)!;
            if (!outPath.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
            {
                throw new ArgumentException($"The output {outPath} must end in .safetensors.");
            }

            ScalarType? type = parse.GetValue(dtype)?.ToLowerInvariant() switch
            {
                null => null,
                "f32" or "float32" => ScalarType.Float32,
                "f16" or "float16" => ScalarType.Float16,
                "bf16" or "bfloat16" => ScalarType.BFloat16,
                var other => throw new ArgumentException($"--dtype {other}: expected f32, f16 or bf16."),
            };
            var prefix = parse.GetValue(strip);
            var info = WeightFile.Inspect(inPath);
            var names = info.Tensors.Select(t => t.Name).Where(n => prefix is null || n.StartsWith(prefix, StringComparison.Ordinal)).Select(n => prefix is null ? n : n[prefix.Length..]).ToList();
            var chosen = parse.GetValue(layout) is { } name ? WeightLayouts.Get(name) : WeightLayouts.Detect(names);
            var ignored = (IReadOnlyList<string>)[];
            var written = 0;
            AnsiConsole.Progress().AutoClear(true).Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new SpinnerColumn()).Start(ctx =>
            {
                var read = ctx.AddTask("read", maxValue: 1);
                var mapTask = ctx.AddTask("rename", maxValue: 1);
                var write = ctx.AddTask("write", maxValue: 1);
                using var scope = NewDisposeScope();
                var source = WeightFile.Load(inPath, type);
                read.Increment(1);
                var stripped = prefix is null ? source : source.Where(kv => kv.Key.StartsWith(prefix, StringComparison.Ordinal)).ToDictionary(kv => kv.Key[prefix.Length..], kv => kv.Value, StringComparer.Ordinal);
                var mapped = chosen is null ? stripped : chosen.Apply(stripped, out ignored);
                mapTask.Increment(1);
                var metadata = new Dictionary<string, string> { ["format"] = "pt", ["medvlp_layout"] = chosen?.Name ?? "none", ["source"] = Path.GetFileName(inPath) };
                Safetensors.Save(outPath, mapped, metadata);
                written = mapped.Count;
                write.Increment(1);
            });
            Console.WriteLine($"wrote {outPath}: {written} tensors from {info.Format} {inPath}, layout {chosen?.Name ?? "none (names kept)"}, {ignored.Count} ignored{(ignored.Count > 0 ? " (" + string.Join(", ", ignored.Take(5)) + (ignored.Count > 5 ? ", ..." : "") + ")" : "")}.");
            return 0;
        }));
        return command;
    }

    private static string ToJson(WeightFileInfo info)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream))
        {
            w.WriteStartObject();
            w.WriteString("path", info.Path);
            w.WriteString("format", info.Format.ToString());
            w.WriteString("layout", info.Layout?.Name);
            w.WriteNumber("tensor_count", info.Tensors.Count);
            w.WriteNumber("total_bytes", info.TotalBytes);
            w.WriteNumber("total_elements", info.Tensors.Sum(t => t.ElementCount));
            w.WriteStartArray("tensors");
            foreach (var t in info.Tensors)
            {
                w.WriteStartObject();
                w.WriteString("name", t.Name);
                w.WriteString("dtype", t.DType.ToString());
                w.WriteStartArray("shape");
                foreach (var d in t.Shape)
                {
                    w.WriteNumberValue(d);
                }

                w.WriteEndArray();
                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteEndObject();
        }

        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }
}
