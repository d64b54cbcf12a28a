using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using MedVlp.Architectures.MedBlip;
using MedVlp.Inference;
using MedVlp.Inference.Generation;
using MedVlp.Volumes.IO;
using Spectre.Console;

namespace MedVlp.Cli.Commands;

/// <summary><c>medvlp zeroshot --model DIR --label "NAME=PROMPT" ... [--json] VOLUME...</c>: zero-shot classification of volumes;
/// <c>--generative</c> asks a model that answers questions (MedBLIP) and maps each answer to a label (unmatched answers are
/// reported as such).</summary>
internal static class ZeroShotCommand
{
    public static Command Create()
    {
        var modelDir = new Option<string>("--model") { Description = "A model package folder (for example " + CliPaths.DefaultDemoFolder + "/model, written by medvlp demo).", Required = true };
        var labels = new Option<string[]>("--label")
        {
            Description = "A label and a prompt as NAME=PROMPT; repeat it (also with the same NAME for several prompts, which are averaged).",
            AllowMultipleArgumentsPerToken = false,
        };
        var json = new Option<bool>("--json") { Description = "Print one JSON object per volume instead of a table." };
        var rejectNonFinite = new Option<bool>("--reject-non-finite") { Description = "Fail (exit 2) on a volume with NaN or infinite voxels instead of classifying it with a warning." };
        var volumes = new Argument<string[]>("volumes") { Description = "Volume files (.nii, .nii.gz, ...).", Arity = ArgumentArity.OneOrMore };
        var generative = new Option<bool>("--generative") { Description = "Ask the model (MedBLIP) and map its answer to a label: an answer starting with a label's name or prompt; without --label, MedBLIP's three diagnoses." };
        var question = new Option<string>("--question") { Description = "The question of --generative.", DefaultValueFactory = _ => MedBlipText.DiagnosisQuestion };
        var context = new Option<string?>("--context") { Description = "Text put before the question of --generative (MedBLIP: EHR text)." };
        var generation = new GenerationCli(defaultMaxTokens: 12);
        var command = new Command("zeroshot", "Classify volumes zero-shot against text prompts with a trained model package.")
        {
            modelDir, labels, json, rejectNonFinite, volumes, generative, question, context,
        };
        generation.AddTo(command);
        command.SetAction((parse, cancellationToken) => Task.FromResult(CliErrors.Run(() =>
        {
            if (parse.GetValue(generative))
            {
                return Generative(parse.GetValue(modelDir)!, parse.GetValue(labels) ?? [], parse.GetValue(question)!, parse.GetValue(context), generation.Read(parse), parse.GetValue(volumes)!, parse.GetValue(json), cancellationToken);
            }

            var parsedLabels = ParseLabels(parse.GetValue(labels) ?? []);
            var files = parse.GetValue(volumes)!;
            var reject = parse.GetValue(rejectNonFinite);
            using var model = VisionLanguageModel.Load(parse.GetValue(modelDir)!);
            var classifier = model.CreateZeroShotClassifier(parsedLabels);
            var rows = new List<(string File, ZeroShotPrediction Prediction)>();
            foreach (var file in files)
            {
                // One volume at a time: memory stays at one volume (within --max-voxels) however many files are given.
                var volume = VolumeReader.Read(file);
                if (reject && volume.CountNonFinite().Describe() is { } bad)
                {
                    throw new Volumes.VolumeFormatException(file, "voxel values", $"{bad}; --reject-non-finite refuses such volumes.");
                }

                var p = classifier.Classify(volume);
                foreach (var w in p.Warnings)
                {
                    CliErrors.Warn($"{file}: {w}");
                }

                rows.Add((file, p));
            }

            if (parse.GetValue(json))
            {
                foreach (var (file, p) in rows)
                {
                    var probabilities = classifier.Labels.Select((l, i) => (l.Name, Value: (double)p.Probabilities[i]))
                        .ToDictionary(x => x.Name, x => double.IsFinite(x.Value) ? (double?)Math.Round(x.Value, 6) : null);
                    var record = new Dictionary<string, object?>
                    {
                        ["file"] = file,
                        ["prediction"] = p.Label,
                        ["probabilities"] = probabilities,
                    };
                    if (p.Warnings.Count > 0)
                    {
                        record["warnings"] = p.Warnings;
                    }

                    Console.WriteLine(JsonSerializer.Serialize(record));
                }
            }
            else
            {
                var table = new Table().AddColumn("volume").AddColumn("prediction");
                foreach (var l in classifier.Labels)
                {
                    table.AddColumn(new TableColumn(Markup.Escape($"p({l.Name})")).RightAligned());
                }

                foreach (var (file, p) in rows)
                {
                    var label = p.Warnings.Count > 0 ? $"{p.Label} (see warning)" : p.Label;
                    table.AddRow([Markup.Escape(Path.GetFileName(file)), Markup.Escape(label), .. p.Probabilities.Select(v => v.ToString("F3", CultureInfo.InvariantCulture))]);
                }

                AnsiConsole.Write(table);
            }

            return 0;
        })));
        return command;
    }

    /// <summary>Generative zero-shot: each volume's answer, mapped to the first label whose name or prompt it starts with.</summary>
    private static int Generative(string modelDir, string[] labelValues, string question, string? context, GenerationOptions options, IReadOnlyList<string> files, bool json, CancellationToken cancellationToken)
    {
        IReadOnlyList<ZeroShotLabel> labels = labelValues.Length > 0
            ? ParseLabels(labelValues)
            : [.. Synthetic.CognitiveDiagnosisNames.All.Select(d => new ZeroShotLabel(d.ToString(), MedBlipText.Answer(d)))];
        using var model = VisionLanguageModel.Load(modelDir);
        var vqa = new VisualQuestionAnswering(model);
        var rows = new List<(string File, string Answer, string? Label)>();
        foreach (var file in files)
        {
            var answer = vqa.Answer(VolumeReader.Read(file, null, cancellationToken), question, context, options, cancellationToken).Text;
            var label = labels.FirstOrDefault(l => answer.StartsWith(l.Name, StringComparison.OrdinalIgnoreCase)
                || l.Prompts.Any(p => answer.StartsWith(p, StringComparison.OrdinalIgnoreCase)))?.Name;
            rows.Add((file, answer, label));
        }

        if (json)
        {
            foreach (var (file, answer, label) in rows)
            {
                Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object?> { ["file"] = file, ["answer"] = answer, ["prediction"] = label, ["matched"] = label is not null }));
            }
        }
        else
        {
            var table = new Table().AddColumn("volume").AddColumn("answer").AddColumn("prediction");
            foreach (var (file, answer, label) in rows)
            {
                table.AddRow(Markup.Escape(Path.GetFileName(file)), Markup.Escape(answer), Markup.Escape(label ?? "(unmatched)"));
            }

            AnsiConsole.Write(table);
        }

        var unmatched = rows.Count(r => r.Label is null);
        if (unmatched > 0)
        {
            CliErrors.Warn($"{unmatched} of {rows.Count} answers name no label (reported as unmatched).");
        }

        return 0;
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
