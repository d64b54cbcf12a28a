using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using MedVlp.Modeling;
using MedVlp.Packaging;
using Spectre.Console;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Cli.Commands;

/// <summary>
/// <c>medvlp model list</c> (registered architectures, sizes, parameter counts), <c>medvlp model keys --arch NAME
/// [--size tiny|full] [--json]</c> (the state-dict keys and shapes, built on the <c>meta</c> device without memory) and
/// <c>medvlp model repack PACKAGE [--out DIR]</c> (rewrite a package, version 1 or 2, as version 2, atomically).
/// </summary>
internal static class ModelCommand
{
    public static Command Create()
    {
        var command = new Command("model", "Inspect the registered architectures and model packages.");
        command.Subcommands.Add(List());
        command.Subcommands.Add(Keys());
        command.Subcommands.Add(Repack());
        return command;
    }

    private static Command List()
    {
        var json = new Option<bool>("--json") { Description = "Print JSON instead of a table." };
        var command = new Command("list", "List the registered architectures, their sizes and parameter counts.") { json };
        command.SetAction(parse => CliErrors.Run(() =>
        {
            var rows = new List<(string Name, string Size, ParameterCounts Counts, string Description)>();
            foreach (var name in ModelRegistry.Names)
            {
                var architecture = ModelRegistry.Get(name);
                foreach (var size in architecture.Sizes.Keys)
                {
                    using var model = ModelRegistry.Create(name, size, new ModelCreateOptions { Device = new Device(DeviceType.META) });
                    rows.Add((name, size, model.CountParameters(), architecture.Description));
                }
            }

            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(rows.Select(r => new Dictionary<string, object>
                {
                    ["name"] = r.Name,
                    ["size"] = r.Size,
                    ["parameters"] = r.Counts.Total,
                    ["description"] = r.Description,
                })));
                return 0;
            }

            var table = new Table().AddColumn("architecture").AddColumn("size").AddColumn(new TableColumn("parameters").RightAligned()).AddColumn("description");
            foreach (var r in rows)
            {
                table.AddRow(Markup.Escape(r.Name), Markup.Escape(r.Size), r.Counts.Total.ToString("N0", CultureInfo.InvariantCulture), Markup.Escape(r.Description));
            }

            AnsiConsole.Write(table);
            return 0;
        }));
        return command;
    }

    private static Command Keys()
    {
        var arch = new Option<string>("--arch") { Description = "A registered architecture (see `medvlp model list`).", Required = true };
        var size = new Option<string>("--size") { Description = "tiny or full.", DefaultValueFactory = _ => ModelRegistry.Tiny };
        var json = new Option<bool>("--json") { Description = "Print one JSON object: {\"keys\": {key: [shape]}, \"parameters\": {...}}." };
        var command = new Command("keys", "Print the state-dict keys and shapes of an architecture, built on the meta device (no memory).") { arch, size, json };
        command.SetAction(parse => CliErrors.Run(() =>
        {
            var name = parse.GetValue(arch)!;
            var sizeName = parse.GetValue(size)!;
            if (!ModelRegistry.TryGet(name, out var architecture))
            {
                throw new ArgumentException($"No architecture \"{name}\"; known: {string.Join(", ", ModelRegistry.Names)}.");
            }

            if (!architecture.Sizes.ContainsKey(sizeName))
            {
                throw new ArgumentException($"Architecture \"{name}\" has no size \"{sizeName}\"; it has {string.Join(", ", architecture.Sizes.Keys)}.");
            }

            using var model = ModelRegistry.Create(name, sizeName, new ModelCreateOptions { Device = new Device(DeviceType.META) });
            using var scope = NewDisposeScope();
            var keys = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape, StringComparer.Ordinal);
            var counts = model.CountParameters();
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object>
                {
                    ["keys"] = keys,
                    ["parameters"] = new Dictionary<string, long> { ["total"] = counts.Total, ["trainable"] = counts.Trainable, ["frozen"] = counts.Frozen },
                }));
                return 0;
            }

            foreach (var (key, shape) in keys)
            {
                Console.WriteLine($"{key} [{string.Join(", ", shape)}]");
            }

            Console.WriteLine(FormattableString.Invariant($"parameters: {counts.Total:N0} total, {counts.Trainable:N0} trainable, {counts.Frozen:N0} frozen"));
            return 0;
        }));
        return command;
    }

    private static Command Repack()
    {
        var package = new Argument<string>("package") { Description = "A model package folder (format version 1 or 2)." };
        var output = new Option<string?>("--out") { Description = "Where to write the version-2 package (default: replace the input, atomically)." };
        var command = new Command("repack", "Rewrite a model package in the current format (checksums, components), atomically.") { package, output };
        command.SetAction(parse => CliErrors.Run(() =>
        {
            var source = parse.GetValue(package)!;
            var target = parse.GetValue(output) ?? source;
            using var model = VisionLanguageModel.Load(source);
            model.Save(target, new ModelSaveOptions { Progress = new ConsoleProgress() });
            return 0;
        }));
        return command;
    }

    /// <summary>Prints each save step as it starts, synchronously (so the line is out before the step runs).</summary>
    private sealed class ConsoleProgress : IProgress<string>
    {
        public void Report(string value)
        {
            Console.Out.WriteLine($"saving: {value}");
            Console.Out.Flush();
        }
    }
}
