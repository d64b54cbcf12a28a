using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using MedVlp.Architectures.Colipri;
using MedVlp.Data;
using MedVlp.Evaluation;
using MedVlp.Volumes.IO;
using Spectre.Console;

namespace MedVlp.Cli.Commands;

/// <summary>
/// <c>medvlp evaluate --model DIR --manifest FILE --findings FILE [--split NAME] [--json]</c>: zero-shot finding
/// classification (COLIPRI's rule: softmax over each finding's positive / negative prompt pair, prompt ensembles averaged)
/// of every manifest volume, scored against the manifest's labels per finding and as macro averages: AUROC, AUPRC, F1 and
/// balanced accuracy (threshold 0.5 on the pair probability).
/// </summary>
internal static class EvaluateCommand
{
    public static Command Create()
    {
        var modelDir = new Option<string>("--model") { Description = "A model package folder of a dual encoder (colipri, clip3d).", Required = true };
        var manifestPath = new Option<string>("--manifest") { Description = "A .csv or .jsonl manifest whose labels hold each finding (true/false, 1/0, yes/no).", Required = true };
        var findingsPath = new Option<string>("--findings")
        {
            Description = "A JSON findings file: {\"finding\": {\"positive\": [prompts], \"negative\": [prompts], \"label\": optional manifest label}}.",
            Required = true,
        };
        var split = new Option<string?>("--split") { Description = "Use only the manifest entries of this split." };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of a table." };
        var command = new Command("evaluate", "Zero-shot finding classification of a manifest's volumes from positive / negative prompt pairs, with per-finding and macro AUROC, AUPRC, F1 and balanced accuracy.")
        {
            modelDir, manifestPath, findingsPath, split, json,
        };
        command.SetAction((parse, cancellationToken) => Task.FromResult(CliErrors.Run(() =>
        {
            var findings = FindingPromptsFile.Load(parse.GetValue(findingsPath)!);
            var manifest = Manifest.Load(parse.GetValue(manifestPath)!);
            var splitName = parse.GetValue(split);
            var entries = (splitName is null ? manifest.Entries : manifest.Split(splitName)).ToList();
            if (entries.Count == 0)
            {
                throw new ArgumentException($"{manifest.Source}: no entries{(splitName is null ? "" : $" in split \"{splitName}\"")}.");
            }

            var truth = entries.Select(e => findings.Select(f => Label(manifest.Source, e, f.Label)).ToArray()).ToArray();
            using var model = VisionLanguageModel.Load(parse.GetValue(modelDir)!);
            var zeroShot = new FindingZeroShot(model.DualEncoder, model.Tokenizer, [.. findings.Select(f => f.Prompts)]);
            var quiet = parse.GetValue(json) || Console.IsErrorRedirected;
            var embeddings = new float[entries.Count][];
            void Work(Action<int> step)
            {
                for (var i = 0; i < entries.Count; i++)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    embeddings[i] = model.VolumeEncoder.Embed(VolumeReader.Read(entries[i].Path, cancellationToken: cancellationToken));
                    step(i + 1);
                }
            }

            if (quiet)
            {
                Work(_ => { });
            }
            else
            {
                AnsiConsole.Progress()
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                    .Start(ctx =>
                    {
                        var task = ctx.AddTask("embedding volumes", maxValue: entries.Count);
                        Work(n => task.Value = n);
                    });
            }

            var evaluation = zeroShot.Evaluate(embeddings, truth);
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object?>
                {
                    ["count"] = entries.Count,
                    ["macro_auroc"] = Round(evaluation.MacroAuroc),
                    ["macro_auprc"] = Round(evaluation.MacroAuprc),
                    ["macro_f1"] = Round(evaluation.MacroF1),
                    ["macro_balanced_accuracy"] = Round(evaluation.MacroBalancedAccuracy),
                    ["findings"] = evaluation.Findings.ToDictionary(kv => kv.Key, kv => new Dictionary<string, object?>
                    {
                        ["positives"] = kv.Value.Support,
                        ["auroc"] = Round(kv.Value.Auroc),
                        ["auprc"] = Round(kv.Value.Auprc),
                        ["f1"] = Round(kv.Value.F1),
                        ["balanced_accuracy"] = Round(kv.Value.BalancedAccuracy),
                    }),
                }));
                return 0;
            }

            Print(evaluation, entries.Count);
            return 0;
        })));
        return command;
    }

    /// <summary>Prints the per-finding table and the macro line.</summary>
    internal static void Print(FindingEvaluation evaluation, int count)
    {
        var table = new Table().AddColumn("finding").AddColumn(new TableColumn("positives").RightAligned()).AddColumn(new TableColumn("AUROC").RightAligned())
            .AddColumn(new TableColumn("AUPRC").RightAligned()).AddColumn(new TableColumn("F1").RightAligned()).AddColumn(new TableColumn("bal. acc.").RightAligned());
        foreach (var (name, m) in evaluation.Findings)
        {
            table.AddRow(Markup.Escape(name), m.Support.ToString(CultureInfo.InvariantCulture), F(m.Auroc), F(m.Auprc), F(m.F1), F(m.BalancedAccuracy));
        }

        table.AddRow("macro", "", F(evaluation.MacroAuroc), F(evaluation.MacroAuprc), F(evaluation.MacroF1), F(evaluation.MacroBalancedAccuracy));
        AnsiConsole.Write(table);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{count} volumes, {evaluation.Findings.Count} findings: macro AUROC {F(evaluation.MacroAuroc)}"));
    }

    private static bool Label(string source, ManifestEntry entry, string label)
    {
        if (!entry.Labels.TryGetValue(label, out var value))
        {
            throw new ArgumentException($"{source}: entry \"{entry.Id}\" (line {entry.Line}) has no label \"{label}\"; it has {string.Join(", ", entry.Labels.Keys)}.");
        }

        return value.Trim().ToLowerInvariant() switch
        {
            "true" or "1" or "yes" or "present" => true,
            "false" or "0" or "no" or "absent" => false,
            _ => throw new ArgumentException($"{source}: entry \"{entry.Id}\" (line {entry.Line}) label \"{label}\" is \"{value}\"; expected true/false, 1/0 or yes/no."),
        };
    }

    private static double? Round(double v) => double.IsNaN(v) ? null : Math.Round(v, 6);

    private static string F(double v) => double.IsNaN(v) ? "n/a" : v.ToString("F3", CultureInfo.InvariantCulture);
}
