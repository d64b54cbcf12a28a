using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using MedVlp.Data;
using MedVlp.Evaluation;
using Spectre.Console;

namespace MedVlp.Cli.Commands;

/// <summary>
/// <c>medvlp probe --model DIR --manifest FILE --label COLUMN [--folds K] [--c C] [--seed S] [--split NAME]
/// [--baseline-random] [--json]</c>: a cross-validated linear probe on a model's frozen volume embeddings.
/// </summary>
internal static class ProbeCommand
{
    public static Command Create()
    {
        var modelDir = new Option<string>("--model") { Description = "A model package folder.", Required = true };
        var manifestPath = new Option<string>("--manifest") { Description = "A .csv or .jsonl manifest (path, label columns; see `medvlp synth`).", Required = true };
        var label = new Option<string>("--label") { Description = "The manifest column (label) to predict.", Required = true };
        var folds = new Option<int>("--folds") { Description = "Cross-validation folds (stratified).", DefaultValueFactory = _ => 5 };
        var c = new Option<double>("--c") { Description = "Inverse L2 strength of the logistic regression (scikit-learn's C).", DefaultValueFactory = _ => 1.0 };
        var seed = new Option<int>("--seed") { Description = "Seed of the fold assignment (and of the random baseline's weights).", DefaultValueFactory = _ => 0 };
        var split = new Option<string?>("--split") { Description = "Use only the manifest entries of this split." };
        var baseline = new Option<bool>("--baseline-random") { Description = "Also probe the same architecture with freshly initialised weights, to show what training added." };
        var features = new Option<string>("--features")
        {
            Description = "embedding: the model's shared-space embedding (default); backbone: the image backbone's pooled feature, what M-FLAG evaluates downstream.",
            DefaultValueFactory = _ => "embedding",
        };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of tables." };
        var command = new Command("probe", "Fit a cross-validated linear probe (logistic regression) on a model's frozen volume embeddings and report accuracy and per-class AUROC.")
        {
            modelDir, manifestPath, label, folds, c, seed, split, baseline, json, features,
        };
        command.SetAction((parse, cancellationToken) => Task.FromResult(CliErrors.Run(() =>
        {
            var column = parse.GetValue(label)!;
            var manifest = Manifest.Load(parse.GetValue(manifestPath)!);
            var splitName = parse.GetValue(split);
            var entries = (splitName is null ? manifest.Entries : manifest.Split(splitName)).ToList();
            var missing = entries.Where(e => !e.Labels.ContainsKey(column)).Select(e => e.Id).Take(5).ToList();
            if (entries.Count == 0)
            {
                throw new ArgumentException($"{manifest.Source}: no entries{(splitName is null ? "" : $" in split \"{splitName}\"")}.");
            }

            if (missing.Count > 0)
            {
                throw new ArgumentException($"{manifest.Source}: entries without the label \"{column}\" (for example {string.Join(", ", missing)}); known labels: {string.Join(", ", entries[0].Labels.Keys)}.");
            }

            var classes = entries.Select(e => e.Labels[column]).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
            var y = entries.Select(e => Array.IndexOf(classes, e.Labels[column])).ToArray();
            var options = new LinearProbeOptions { C = parse.GetValue(c) };
            var k = parse.GetValue(folds);
            var s = parse.GetValue(seed);
            var quiet = parse.GetValue(json) || Console.IsErrorRedirected;
            var backbone = parse.GetValue(features) switch
            {
                "embedding" => false,
                "backbone" => true,
                var f => throw new ArgumentException($"--features must be embedding or backbone, got \"{f}\"."),
            };

            using var model = VisionLanguageModel.Load(parse.GetValue(modelDir)!);
            var results = new List<(string Name, LinearProbeResult Result)>
            {
                ("trained", LinearProbe.CrossValidate(Embed(model, entries, "embedding", backbone, quiet, cancellationToken), y, classes, k, s, options, cancellationToken: cancellationToken)),
            };
            if (parse.GetValue(baseline))
            {
                using var random = VisionLanguageModel.Create(model.Config, model.Tokenizer, model.Preprocessing, seed: s);
                results.Add(("random init", LinearProbe.CrossValidate(Embed(random, entries, "random-init embedding", backbone, quiet, cancellationToken), y, classes, k, s, options, cancellationToken: cancellationToken)));
            }

            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(results.ToDictionary(r => r.Name, r => ToJson(r.Result.Report, r.Result.FoldAccuracies))));
                return 0;
            }

            foreach (var (name, result) in results)
            {
                Print(name, column, result, k);
            }

            return 0;
        })));
        return command;
    }

    private static float[][] Embed(VisionLanguageModel model, List<ManifestEntry> entries, string what, bool backbone, bool quiet, CancellationToken cancellationToken)
    {
        if (backbone && model.Module is not MedVlp.Modeling.IImageFeatureEncoder)
        {
            throw new ArgumentException($"--features backbone: architecture \"{model.Architecture}\" exposes no backbone features; use --features embedding.");
        }

        var embeddings = new float[entries.Count][];
        void Work(Action<int> step)
        {
            for (var i = 0; i < entries.Count; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var volume = ImageFileReader.ReadAny(entries[i].Path, cancellationToken);
                embeddings[i] = backbone ? model.VolumeEncoder.EmbedBackboneFeatures([volume], cancellationToken)[0] : model.VolumeEncoder.Embed(volume);
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
                    var task = ctx.AddTask(what, maxValue: entries.Count);
                    Work(n => task.Value = n);
                });
        }

        return embeddings;
    }

    private static void Print(string name, string column, LinearProbeResult result, int folds)
    {
        var r = result.Report;
        AnsiConsole.MarkupLine(Markup.Escape(
            $"{name}: {column}, {r.Count} volumes, {r.Classes.Count} classes, {folds}-fold linear probe: accuracy {F(r.Accuracy)}, balanced accuracy {F(r.BalancedAccuracy)}, macro AUROC {F(r.MacroAuroc)}"));
        var table = new Table().AddColumn("class").AddColumn(new TableColumn("n").RightAligned()).AddColumn(new TableColumn("AUROC").RightAligned())
            .AddColumn(new TableColumn("AP").RightAligned()).AddColumn(new TableColumn("recall").RightAligned()).AddColumn(new TableColumn("F1").RightAligned());
        foreach (var m in r.Classes)
        {
            table.AddRow(Markup.Escape(m.Name), m.Support.ToString(CultureInfo.InvariantCulture), F(m.Auroc), F(m.Auprc), F(m.Recall), F(m.F1));
        }

        AnsiConsole.Write(table);
    }

    private static Dictionary<string, object?> ToJson(ClassificationReport r, IReadOnlyList<double> foldAccuracies) => new()
    {
        ["count"] = r.Count,
        ["accuracy"] = Round(r.Accuracy),
        ["balanced_accuracy"] = Round(r.BalancedAccuracy),
        ["macro_auroc"] = Round(r.MacroAuroc),
        ["macro_auprc"] = Round(r.MacroAuprc),
        ["macro_f1"] = Round(r.MacroF1),
        ["fold_accuracies"] = foldAccuracies.Select(Round).ToArray(),
        ["classes"] = r.Classes.ToDictionary(m => m.Name, m => new Dictionary<string, object?>
        {
            ["support"] = m.Support,
            ["auroc"] = Round(m.Auroc),
            ["auprc"] = Round(m.Auprc),
            ["precision"] = Round(m.Precision),
            ["recall"] = Round(m.Recall),
            ["f1"] = Round(m.F1),
        }),
    };

    private static double? Round(double v) => double.IsNaN(v) ? null : Math.Round(v, 6);

    private static string F(double v) => double.IsNaN(v) ? "n/a" : v.ToString("F3", CultureInfo.InvariantCulture);
}
