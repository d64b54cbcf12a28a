using System.Diagnostics;
using System.Globalization;
using MedVlp.Architectures.Prior;
using MedVlp.Data;
using MedVlp.Evaluation;
using MedVlp.Synthetic;
using MedVlp.Text;
using MedVlp.Training;
using MedVlp.Volumes;
using MedVlp.Volumes.Transforms;
using Spectre.Console;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Cli.Commands;

/// <summary>
/// <c>medvlp demo --arch prior</c>: pre-trains a tiny PRIOR with its three stages (PriorRecipe) through the Trainer on
/// synthetic brain MRIs (the middle axial slice, 64 x 64; <c>--volumes</c>: the whole 64^3 volume with the 3D variant) and
/// their reports, then compares the image encoder with its random initialisation on a cross-validated linear probe of
/// the diagnosis on held-out cases, and reports the released zero-shot rule ("{class} is observed").
/// </summary>
internal static class PriorDemo
{
    private static readonly TransformPipeline Preprocessing = new(
    [
        new MinMaxNormalize { OutputMin = 0, OutputMax = 1 },
        new CropOrPad { Size = new VolumeShape(64, 64, 64), FillValue = 0 },
    ], "prior-demo-64");

    public static int Run(string outDir, int seed, string? vocabPath, int trainCount, int testCount, int stepsPerStage, int batchSize, bool volumes,
        CancellationToken cancellationToken)
    {
        if (trainCount < batchSize || testCount < 15 || stepsPerStage < 1 || batchSize < 2)
        {
            throw new ArgumentException("--train must hold at least one batch, --test at least 15, --steps and --batch at least 1 and 2.");
        }

        var clock = Stopwatch.StartNew();
        Directory.CreateDirectory(outDir);
        var tokenizer = WordPieceTextTokenizer.FromVocabularyFile(vocabPath ?? CliPaths.FindDefaultVocabulary());
        var train = SyntheticBrainDataset.Generate(trainCount, seed, cancellationToken: cancellationToken);
        var test = SyntheticBrainDataset.Generate(testCount, seed, firstIndex: trainCount, cancellationToken: cancellationToken);
        var config = PriorRecipe.TinyConfig(tokenizer.VocabularySize, volumes) with { SentenceEndTokenIds = PriorConfig.SentenceEnds(tokenizer) };
        random.manual_seed(seed);
        using var model = new PriorModel(config);
        using var objective = new PriorObjective(model, tokenizer);
        var labels = test.Select(c => (int)c.Diagnosis).ToArray();
        var classes = CognitiveDiagnosisNames.All.Select(d => d.Code()).ToArray();
        var before = Probe(model, objective, test, labels, classes, seed);
        var zeroBefore = ZeroShot(model, objective, tokenizer, test);

        using var data = new PreparedTrainingData([.. train.Select(c => c.Volume)], [.. train.Select(c => c.Report)], Prepare,
            new TrainingBatchCollator(tokenizer, config.MaxTextTokens), batchSize, seed, cancellationToken);
        using var trainer = new Trainer(objective, PriorRecipe.Options(PriorRecipeSize.Tiny, seed, outDir, stepsPerStage));
        var total = trainer.TotalSteps(data);
        TrainingSummary? summary = null;
        AnsiConsole.Progress().AutoClear(false).Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask("PRIOR", maxValue: total);
                summary = trainer.Fit(data, progress: new InlineProgress<TrainingProgress>(p =>
                {
                    task.Value = p.Step;
                    task.Description = Markup.Escape(string.Create(CultureInfo.InvariantCulture, $"PRIOR ({p.Stage}, loss {p.Losses["total"]:F3})"));
                }), cancellationToken: cancellationToken);
                task.Value = total;
            });

        var after = Probe(model, objective, test, labels, classes, seed);
        var zeroAfter = ZeroShot(model, objective, tokenizer, test);
        var table = new Table().Title(Markup.Escape($"PRIOR tiny ({(volumes ? "3D, 64^3 volumes" : "2D, 64 x 64 middle slices")}), {total} steps, {train.Count} training / {test.Count} held-out cases"))
            .AddColumn("").AddColumn(new TableColumn("random init").RightAligned()).AddColumn(new TableColumn("trained").RightAligned());
        table.AddRow("linear probe accuracy (5-fold)", F(before.Accuracy), F(after.Accuracy));
        table.AddRow("linear probe macro AUROC", F(before.MacroAuroc), F(after.MacroAuroc));
        table.AddRow("zero-shot accuracy (\"{class} is observed\")", F(zeroBefore), F(zeroAfter));
        AnsiConsole.Write(table);
        foreach (var (stage, losses) in summary!.History.GroupBy(h => h.Stage).Select(g => (g.Key, g.Last().Losses)))
        {
            Console.WriteLine($"{stage}: last losses {string.Join(", ", losses.Select(kv => string.Create(CultureInfo.InvariantCulture, $"{kv.Key} {kv.Value:F4}")))}");
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"done in {clock.Elapsed.TotalSeconds:F0} s; metrics and plots in {outDir}"));
        return 0;
    }

    private static string F(double v) => v.ToString("F3", CultureInfo.InvariantCulture);

    private static Tensor Prepare(IReadOnlyList<Volume> volumes) => Collator.CollateVolumes([.. volumes.Select(v => Preprocessing.Apply(v))], [1, 64, 64, 64]);

    /// <summary>A 5-fold logistic-regression probe of the diagnosis on the pooled ResNet features (eval mode).</summary>
    private static ClassificationReport Probe(PriorModel model, PriorObjective objective, IReadOnlyList<SyntheticBrainCase> cases, int[] labels, string[] classes, int seed)
    {
        var features = new List<float[]>();
        Batches(model, objective, cases, x =>
        {
            var pooled = model.ImageBackbone.Features(x).Pooled.to(ScalarType.Float32);
            for (var r = 0; r < pooled.shape[0]; r++)
            {
                features.Add(pooled[r].data<float>().ToArray());
            }
        });
        return LinearProbe.CrossValidate(features, labels, classes, 5, seed).Report;
    }

    /// <summary>The released zero-shot rule with the diagnosis names as classes; the bank's noise off for a deterministic score.</summary>
    private static double ZeroShot(PriorModel model, PriorObjective objective, TextTokenizer tokenizer, IReadOnlyList<SyntheticBrainCase> cases)
    {
        var prompts = tokenizer.EncodeBatch([.. CognitiveDiagnosisNames.All.Select(d => $"{d.LabelName()} is observed")], 16, new TokenBatchOptions { PadToLength = 16 });
        var noise = model.PrototypeBank.Options.Noise;
        model.PrototypeBank.Options.Noise = Losses.PrototypeNoise.None;
        var correct = 0;
        var row = 0;
        Batches(model, objective, cases, x =>
        {
            using var ids = tensor([.. prompts.Ids], [prompts.BatchSize, prompts.SequenceLength], ScalarType.Int64);
            using var mask = tensor([.. prompts.AttentionMask], [prompts.BatchSize, prompts.SequenceLength], ScalarType.Int64);
            var predicted = model.ZeroShotScores(x, ids, mask).argmax(1).data<long>().ToArray();
            foreach (var p in predicted)
            {
                correct += p == (int)cases[row++].Diagnosis ? 1 : 0;
            }
        });
        model.PrototypeBank.Options.Noise = noise;
        return correct / (double)cases.Count;
    }

    private static void Batches(PriorModel model, PriorObjective objective, IReadOnlyList<SyntheticBrainCase> cases, Action<Tensor> run)
    {
        model.eval();
        using (no_grad())
        {
            for (var i = 0; i < cases.Count; i += 10)
            {
                using var scope = NewDisposeScope();
                run(objective.ModelInput(Prepare([.. cases.Skip(i).Take(10).Select(c => c.Volume)])));
            }
        }

        model.train();
    }
}
