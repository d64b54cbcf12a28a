using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using MedVlp.Architectures.Colipri;
using MedVlp.Data;
using MedVlp.Modeling;
using MedVlp.Text;
using MedVlp.Training;
using Spectre.Console;
using static TorchSharp.torch;

namespace MedVlp.Cli.Commands;

/// <summary>
/// <c>medvlp demo --arch colipri</c>: the recipe <c>colipri-demo</c> through <see cref="Trainer"/> (metrics.jsonl, plots,
/// checkpoints under <c>OUT/train</c>): the tiny COLIPRI pre-trained on synthetic chest CTs with all four objectives (a
/// quarter of the training volumes image-only), held-out zero-shot AUROC every evaluation, and at the end the zero-shot
/// metrics per finding, the report-level finding F1 of generated reports, and the saved package.
/// </summary>
internal static class ColipriDemo
{
    public static int Run(string outDir, int seed, string? vocabPath, int trainCount, int testCount, int steps, int batchSize, string? textModelPath, CancellationToken cancellationToken)
    {
        if (trainCount < batchSize || testCount < 4 || steps < 1 || batchSize < 4)
        {
            throw new ArgumentException("--train must be at least --batch, --test at least 4, --steps at least 1 and --batch at least 4.");
        }

        if (textModelPath is not null && vocabPath is not null)
        {
            throw new ArgumentException("--vocab and --text-model exclude each other: the text model brings its own vocabulary.");
        }

        // Like the released model, whose text encoder starts from a pretrained BERT, the demo's text encoder is a real
        // pretrained one (all-MiniLM-L6-v2, frozen) unless --vocab asks for a small BERT trained from scratch.
        textModelPath ??= vocabPath is null ? CliPaths.FindDefaultTextModel() : null;
        var clock = Stopwatch.StartNew();
        Directory.CreateDirectory(outDir);
        using var textModel = textModelPath is null ? null : MedVlp.Backbones.PretrainedBert.Load(textModelPath);
        var tokenizer = textModel?.Tokenizer ?? WordPieceTextTokenizer.FromVocabularyFile(vocabPath ?? CliPaths.FindDefaultVocabulary());
        var resolved = TrainingRecipe.Resolve("colipri-demo");
        var recipe = resolved with { Steps = steps, Seed = seed, TextModel = textModel?.Path, Data = resolved.Data with { BatchSize = batchSize } };
        var plugin = recipe.Plugin!;
        var config = textModel is null ? recipe.CreateModelConfig(tokenizer.VocabularySize) : recipe.CreateModelConfig(textModel);
        var preprocessing = recipe.CreatePreprocessing(config);
        SyntheticTrainingSet? set = null;
        TrainingSummary? summary = null;
        VisionLanguageModel? model = null;
        double generationSeconds = 0, trainingSeconds = 0;
        var trainVolumes = 0;
        var trainDir = Path.Combine(outDir, "train");
        var columns = new ProgressColumn[] { new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn() };
        try
        {
            AnsiConsole.Progress().AutoClear(false).HideCompleted(false).Columns(columns).Start(ctx =>
            {
                var generate = ctx.AddTask("Synthetic chest CTs", maxValue: trainCount + testCount);
                PreparedTrainingData? prepared = null;
                set = WithoutTrainingVolumes(() => plugin.CreateSyntheticData(config, preprocessing, trainCount, testCount, seed, new InlineProgress<int>(n => generate.Value = n), cancellationToken)!, full =>
                {
                    generate.Value = generate.MaxValue;
                    generationSeconds = clock.Elapsed.TotalSeconds;
                    ReleaseMemory(); // the phantoms drawn at full resolution
                    model = textModel is null ? recipe.CreateModel(tokenizer, trainingReports: full.TrainReports) : recipe.CreateModel(textModel, trainingReports: full.TrainReports);
                    var shape = ((IVolumeInputModel)model.Module).ImageInputShape;
                    prepared = new PreparedTrainingData(full.Train, full.TrainReports, v => Collator.CollateVolumes(v, shape),
                        new TrainingBatchCollator(model.Collator, new TextCollation { MaxTokens = recipe.MaxTextTokens(model) }, recipe.Data.SentenceSubsetProbability, seed),
                        batchSize, seed, cancellationToken);
                }, out trainVolumes);
                ReleaseMemory(); // the training volumes' managed copies, now unreachable
                using var data = prepared!;
                using var objective = recipe.CreateObjective(model!);
                using var trainer = new Trainer(objective, recipe.CreateTrainerOptions(trainDir));
                var training = ctx.AddTask("Pre-training tiny COLIPRI", maxValue: trainer.TotalSteps(data));
                var lastAuroc = double.NaN;
                summary = trainer.Fit(data, token => set.Evaluate!(model!, token), new InlineProgress<TrainingProgress>(p =>
                {
                    training.Value = p.Step;
                    if (p.Evaluation?.TryGetValue("val/zero_shot_macro_auroc", out var auroc) == true)
                    {
                        lastAuroc = auroc;
                    }

                    training.Description = Markup.Escape(string.Create(CultureInfo.InvariantCulture,
                        $"Pre-training tiny COLIPRI (loss {p.Losses["total"]:F3}, contrastive {p.Losses["contrastive"]:F2}, opposite {p.Losses["opposite_sentence"]:F2}, held-out AUROC {lastAuroc:F2})"));
                }), cancellationToken);
                trainingSeconds = clock.Elapsed.TotalSeconds - generationSeconds;
            });

            return Report(model!, set!, trainVolumes, summary!, tokenizer, outDir, trainDir, clock, generationSeconds, trainingSeconds, batchSize, cancellationToken);
        }
        finally
        {
            model?.Dispose();
        }
    }

    /// <summary>
    /// Generates the set and prepares its training volumes (<paramref name="prepare"/>: the model and the prepared tensor),
    /// then returns the set without them: the tensor holds them from there on. Its own frame, so no local of the caller
    /// keeps the managed volumes (1 MB each at 64^3) alive through training.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static SyntheticTrainingSet WithoutTrainingVolumes(Func<SyntheticTrainingSet> generate, Action<SyntheticTrainingSet> prepare, out int trainVolumes)
    {
        var full = generate();
        prepare(full);
        trainVolumes = full.Train.Count;
        return new SyntheticTrainingSet([], [], full.HeldOut, full.HeldOutReports) { HeldOutLabels = full.HeldOutLabels, Evaluate = full.Evaluate };
    }

    /// <summary>A blocking, compacting, aggressive collection between the demo's phases: the GC would otherwise keep the
    /// memory of the full-resolution phantoms and of the training volumes' managed copies committed (about 11 GB at 2,880
    /// volumes) though nothing lives in it.</summary>
    private static void ReleaseMemory() => GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);

    private static int Report(VisionLanguageModel model, SyntheticTrainingSet set, int trainVolumes, TrainingSummary summary, WordPieceTextTokenizer tokenizer, string outDir, string trainDir,
        Stopwatch clock, double generationSeconds, double trainingSeconds, int batchSize, CancellationToken cancellationToken)
    {
        var colipri = (ColipriModel)model.Module;
        colipri.eval();
        var labels = set.HeldOutLabels!;
        var evaluation = ColipriChest.EvaluateZeroShot(model, set.HeldOut, labels, cancellationToken);

        // Report-level finding F1: each held-out volume's greedy report, read back by the labeler; a finding counts as reported when stated.
        var labeler = new ReportFindingLabeler(ColipriChest.Findings);
        var reports = new List<string>();
        var shape = colipri.ImageInputShape;
        using (no_grad())
        {
            foreach (var volume in set.HeldOut)
            {
                using var scope = NewDisposeScope();
                var tokens = colipri.EncodeImageTokens(Collator.CollateVolumes([volume], shape));
                var ids = colipri.GenerateReport(tokens, tokenizer.ClassificationTokenId, tokenizer.SeparatorTokenId, colipri.MaxTextTokens - 1, cancellationToken);
                reports.Add(tokenizer.Decode(ids.Select(i => (int)i)));
            }
        }

        var reported = reports.Select(labeler.Label).ToArray();
        var perFinding = ColipriChest.Findings.Select((f, k) => F1(reported.Select(r => r[k] == 1).ToArray(), labels.Select(l => l[f.Name]).ToArray())).ToArray();
        var tp = perFinding.Sum(m => m.Tp);
        var microF1 = 2.0 * tp / Math.Max(1, (2 * tp) + perFinding.Sum(m => m.Fp) + perFinding.Sum(m => m.Fn));

        EvaluateCommand.Print(evaluation, set.HeldOut.Count);
        var modelDir = Path.Combine(outDir, "model");
        model.Save(modelDir);
        FindingPromptsFile.Save(Path.Combine(outDir, "findings.json"), ColipriChest.Prompts);
        Console.WriteLine($"example generated report (held-out volume 0): {reports[0]}");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"generated reports: finding F1 {microF1:F3} (micro), per finding {string.Join(", ", ColipriChest.Findings.Select((f, k) => $"{f.Name} {perFinding[k].F1:F2}"))}"));
        var history = summary.History;
        var window = Math.Min(20, history.Count);
        foreach (var term in history[^1].Losses.Keys)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{term}: first {window} steps {history.Take(window).Average(h => h.Losses[term]):F4}, last {window} steps {history.TakeLast(window).Average(h => h.Losses[term]):F4}"));
        }

        Console.WriteLine($"model: {modelDir}; prompts: {Path.Combine(outDir, "findings.json")}; metrics.jsonl, plots/ and checkpoints/: {trainDir}");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"generated {trainVolumes + set.HeldOut.Count} volumes in {generationSeconds:F0} s, trained {summary.StepsDone} steps of {batchSize} in {trainingSeconds:F0} s, {clock.Elapsed.TotalSeconds:F0} s in all"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"held-out zero-shot macro AUROC: {evaluation.MacroAuroc:F3} ({set.HeldOut.Count} volumes, {evaluation.Findings.Count} findings)"));
        return 0;
    }

    private static (int Tp, int Fp, int Fn, double F1) F1(bool[] predicted, bool[] truth)
    {
        var tp = predicted.Zip(truth).Count(p => p.First && p.Second);
        var fp = predicted.Zip(truth).Count(p => p.First && !p.Second);
        var fn = predicted.Zip(truth).Count(p => !p.First && p.Second);
        return (tp, fp, fn, 2.0 * tp / Math.Max(1, (2 * tp) + fp + fn));
    }
}
