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
    /// <summary>Untimed steps before the timed ones (train_step_torch.py's <c>--warmup</c> default is the same).</summary>
    private const int Warmup = 5;

    public static void Run(int threads, int repeats, bool loader = true, bool breakdown = false, string? only = null)
    {
        set_num_threads(threads);
        Console.WriteLine($"MedVlp train step, TorchSharp on libtorch, {threads} thread(s), .NET {Environment.Version}");
        var vocab = TestData.File("bert/vocab.txt");
        var tokenizer = WordPieceTextTokenizer.FromVocabularyFile(vocab);
        var tiny = Clip3dConfig.Tiny(tokenizer.VocabularySize);
        var mid = Mid(tokenizer.VocabularySize);
        foreach (var (name, config, batch, tokens) in new[] { ("tiny", tiny, 32, 64), ("mid", mid, 8, 64) })
        {
            if (only is not null && only != name)
            {
                continue;
            }

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
            var times = CpuTimer.Measure(() => trainer.TrainStep([data], 1e-4), Warmup, repeats);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{name}: {config.Volume.InputSize}^3 input, width {config.Volume.Width} x {config.Volume.Depth}, BERT {config.Text.HiddenSize} x {config.Text.NumHiddenLayers}, batch {batch}, {tokens} tokens, {trainer.Parameters.All.Sum(p => p.numel()):N0} parameters: median {times.Median:F1} ms/step (min {times.Min:F1}), CPU {times.Cpu:F1} ms/step"));
            if (breakdown)
            {
                Breakdown(trainer, objective, data, repeats);
            }
        }

        if (loader)
        {
            LoaderVersusCached(tokenizer, tiny, threads);
        }
    }

    /// <summary>Where a step's time goes: the phases of <see cref="Trainer.TrainStep"/> timed one by one (mean ms).</summary>
    private static void Breakdown(Trainer trainer, TrainingObjective objective, TrainingBatch data, int repeats)
    {
        var phases = new[] { "zero_grad", "encode images+texts", "loss", "backward", "read scalars", "clip_grad_norm_", "optimizer step" };
        var sums = new double[phases.Length];
        for (var r = 0; r < repeats + 1; r++)
        {
            using var scope = NewDisposeScope();
            var marks = new double[phases.Length + 1];
            marks[0] = ThreadCpuMilliseconds();
            trainer.Optimizer.zero_grad();
            marks[1] = ThreadCpuMilliseconds();
            var features = objective.Encode(data);
            marks[2] = ThreadCpuMilliseconds();
            var output = objective.ComputeLoss(features);
            marks[3] = ThreadCpuMilliseconds();
            output.Total.backward();
            marks[4] = ThreadCpuMilliseconds();
            _ = output.ToScalars();
            marks[5] = ThreadCpuMilliseconds();
            nn.utils.clip_grad_norm_(trainer.Parameters.All, 1.0);
            marks[6] = ThreadCpuMilliseconds();
            trainer.Optimizer.step();
            marks[7] = ThreadCpuMilliseconds();
            if (r == 0)
            {
                continue;
            }

            for (var i = 0; i < phases.Length; i++)
            {
                sums[i] += marks[i + 1] - marks[i];
            }
        }

        Console.WriteLine("  breakdown (mean CPU ms of the calling thread): " + string.Join(", ", phases.Select((p, i) => string.Create(CultureInfo.InvariantCulture, $"{p} {sums[i] / repeats:F2}"))));
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

    /// <summary>CPU time of the calling thread (Linux <c>CLOCK_THREAD_CPUTIME_ID</c>), in milliseconds.</summary>
    private static double ThreadCpuMilliseconds()
    {
        if (ClockGetTime(3, out var ts) != 0)
        {
            throw new InvalidOperationException("clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed.");
        }

        return (ts.Seconds * 1e3) + (ts.Nanoseconds / 1e6);
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "clock_gettime")]
    private static extern int ClockGetTime(int clock, out TimeSpec time);

    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }
}
