using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using MedVlp.Inference;
using MedVlp.Volumes.IO;
using Spectre.Console;

namespace MedVlp.Cli.Commands;

/// <summary><c>medvlp zeroshot --model DIR --label "NAME=PROMPT" ... [--json] VOLUME...</c>: zero-shot classification of volumes.</summary>
internal static class ZeroShotCommand
{
    public static Command Create()
    {
        var modelDir = new Option<string>("--model") { Description = "A model package folder (for example " + CliPaths.DefaultDemoFolder + "/model, written by medvlp demo).", Required = true };
        var labels = new Option<string[]>("--label")
        {
            Description = "A label and a prompt as NAME=PROMPT; repeat it (also with the same NAME for several prompts, which are averaged).",
            Required = true,
            AllowMultipleArgumentsPerToken = false,
        };
        var json = new Option<bool>("--json") { Description = "Print one JSON object per volume instead of a table." };
        var volumes = new Argument<string[]>("volumes") { Description = "Volume files (.nii, .nii.gz, ...).", Arity = ArgumentArity.OneOrMore };
        var command = new Command("zeroshot", "Classify volumes zero-shot against text prompts with a trained model package.")
        {
            modelDir, labels, json, volumes,
        };
        command.SetAction(parse => CliErrors.Run(() =>
        {
            var parsedLabels = ParseLabels(parse.GetValue(labels)!);
            using var model = VisionLanguageModel.Load(parse.GetValue(modelDir)!);
            var classifier = model.CreateZeroShotClassifier(parsedLabels);
            var files = parse.GetValue(volumes)!;
            var loaded = files.Select(f => VolumeReader.Read(f)).ToArray();
            var predictions = classifier.Classify(loaded);
            if (parse.GetValue(json))
            {
                for (var n = 0; n < files.Length; n++)
                {
                    var p = predictions[n];
                    var probabilities = classifier.Labels.Select((l, i) => (l.Name, Value: (double)p.Probabilities[i])).ToDictionary(x => x.Name, x => Math.Round(x.Value, 6));
                    Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object>
                    {
                        ["file"] = files[n],
                        ["prediction"] = p.Label,
                        ["probabilities"] = probabilities,
                    }));
                }
            }
            else
            {
                var table = new Table().AddColumn("volume").AddColumn("prediction");
                foreach (var l in classifier.Labels)
                {
                    table.AddColumn(new TableColumn(Markup.Escape($"p({l.Name})")).RightAligned());
                }

                for (var n = 0; n < files.Length; n++)
                {
                    var p = predictions[n];
                    table.AddRow([Markup.Escape(Path.GetFileName(files[n])), Markup.Escape(p.Label), .. p.Probabilities.Select(v => v.ToString("F3", CultureInfo.InvariantCulture))]);
                }

                AnsiConsole.Write(table);
            }

            return 0;
        }));
        return command;
    }

    /// <summary>Groups NAME=PROMPT pairs by name, keeping first-seen order.</summary>
    internal static IReadOnlyList<ZeroShotLabel> ParseLabels(IReadOnlyList<string> values)
    {
        var order = new List<string>();
        var prompts = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (var value in values)
        {
            var eq = value.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0 || eq == value.Length - 1)
            {
                throw new ArgumentException($"--label '{value}' is not NAME=PROMPT.");
            }

            var name = value[..eq].Trim();
            if (!prompts.TryGetValue(name, out var list))
            {
                prompts[name] = list = [];
                order.Add(name);
            }

            list.Add(value[(eq + 1)..].Trim());
        }

        if (order.Count < 2)
        {
            throw new ArgumentException("Give at least two different labels with --label NAME=PROMPT.");
        }

        return order.Select(n => new ZeroShotLabel(n, prompts[n])).ToArray();
    }
}
