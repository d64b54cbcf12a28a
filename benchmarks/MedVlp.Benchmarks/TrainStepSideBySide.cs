using System.Diagnostics;
using System.Globalization;
using MedVlp.Data;
using MedVlp.Losses;
using MedVlp.Modeling;
using MedVlp.Synthetic;
using MedVlp.Text;
using MedVlp.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Benchmarks;

/// <summary>
/// <c>-- train-step [threads] [repeats]</c>: one optimisation step (forward, CLIP loss, backward, clipping, AdamW) of the
/// <c>tiny</c> clip3d model and of a mid-size one, timed as benchmarks/reference/train_step_torch.py times the same model,
/// optimizer and batch in PyTorch; then the step rate of the tiny model fed by <see cref="VolumeDataLoader"/> from NIfTI
/// files against the rate on cached batches.
/// </summary>
internal static class TrainStepSideBySide
{
    public static void Run(int threads, int repeats)
    {
        set_num_threads(threads);
        Console.WriteLine($"MedVlp train step, TorchSharp on libtorch, {threads} thread(s), .NET {Environment.Version}");
        var vocab = TestData.File("bert/vocab.txt");
        var tokenizer = WordPieceTextTokenizer.FromVocabularyFile(vocab);
        var tiny = Clip3dConfig.Tiny(tokenizer.VocabularySize);
        var mid = Mid(tokenizer.VocabularySize);
        foreach (var (name, config, batch, tokens) in new[] { ("tiny", tiny, 32, 64), ("mid", mid, 8, 64) })
        {
            using var model = VisionLanguageModel.Create(config, tokenizer, TrainingRecipe.Preprocessing(config.Volume.InputSize), seed: 1);
            using var objective = new DualEncoderObjective(model, new ClipLoss());
            using var trainer = new Trainer(objective, new TrainerOptions { Optimizer = new OptimizerSettings { LearningRate = 1e-4 } });
            manual_seed(0);
            var s = config.Volume.InputSize;
            using var volumes = rand([batch, 1, s, s, s]);
            var ids = randint(1000, 2000, [batch, tokens], dtype: ScalarType.Int64);
            var mask = ones(batch, tokens, dtype: ScalarType.Int64);
            using var data = new TrainingBatch(volumes.clone(), null, ids, mask, [.. Enumerable.Repeat(true, batch)]);
            model.Module.train();
            var times = Time(() => trainer.TrainStep([data], 1e-4), repeats);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{name}: {config.Volume.InputSize}^3 input, width {config.Volume.Width} x {config.Volume.Depth}, BERT {config.Text.HiddenSize} x {config.Text.NumHiddenLayers}, batch {batch}, {tokens} tokens, {trainer.Parameters.All.Sum(p => p.numel()):N0} parameters: median {times.Median:F1} ms/step (min {times.Min:F1})"));
        }

        LoaderVersusCached(tokenizer, tiny, threads);
    }

    /// <summary>The mid-size model of the comparison (64^3 input: 513 image tokens).</summary>
    public static Clip3dConfig Mid(int vocabularySize) => new()
    {
        Volume = new VolumeTransformerConfig { InputSize = 64, PatchSize = 8, Width = 256, Depth = 4, Heads = 8, MlpRatio = 4 },
        Text = new BertConfig
        {
            VocabSize = vocabularySize, HiddenSize = 256, NumHiddenLayers = 4, NumAttentionHeads = 8, IntermediateSize = 1024, MaxPositionEmbeddings = 128,
            HiddenDropoutProb = 0, AttentionProbsDropoutProb = 0, AddPoolingLayer = false,
        },
        EmbeddingDim = 256,
        TextPooling = TextPooling.Mean,
        MaxTextTokens = 128,
    };

    private static void LoaderVersusCached(TextTokenizer tokenizer, Clip3dConfig config, int threads)
    {
        var dir = Directory.CreateTempSubdirectory("medvlp-bench-loader-").FullName;
        try
        {
            const int Count = 128, Batch = 32;
            var cases = SyntheticBrainDataset.Generate(Count, 5);
            var manifest = SyntheticManifest.Write(cases, dir);
            using var model = VisionLanguageModel.Create(config, tokenizer, TrainingRecipe.Preprocessing(config.Volume.InputSize), seed: 1);
            using var objective = new DualEncoderObjective(model, new ClipLoss());
            var text = new TextCollation { MaxTokens = config.MaxTextTokens };
            using var cached = new PreparedTrainingData([.. cases.Select(c => c.Volume)], [.. cases.Select(c => c.Report)], v => model.PrepareVolumesForTraining(v),
                new TrainingBatchCollator(model.Collator, text), Batch, seed: 1);
            var workers = Math.Max(1, Environment.ProcessorCount - threads);
            var loader = new LoaderTrainingData(
                new VolumeDataLoader(Manifest.Load(manifest).Entries, model.Preprocessing, new VolumeLoaderOptions { BatchSize = Batch, Workers = workers, PrefetchBatches = 2, Seed = 1, DropLast = true }),
                new TrainingBatchCollator(model.Collator, text));
            foreach (var (name, data) in new (string, ITrainingData)[] { ("cached batches", cached), ($"VolumeDataLoader ({workers} workers, NIfTI files)", loader), ("cached batches", cached) })
            {
                using var trainer = new Trainer(objective, new TrainerOptions { Epochs = 2 });
                var clock = Stopwatch.StartNew();
                var summary = trainer.Fit(data);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"tiny model, {name}: {summary.StepsDone / clock.Elapsed.TotalSeconds:F2} steps/s ({summary.StepsDone} steps of {Batch})"));
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static (double Median, double Min) Time(Action action, int repeats)
    {
        action();
        action();
        var times = new List<double>();
        for (var n = 0; n < repeats; n++)
        {
            var clock = Stopwatch.StartNew();
            action();
            times.Add(clock.Elapsed.TotalMilliseconds);
        }

        times.Sort();
        return (times[times.Count / 2], times[0]);
    }
}
