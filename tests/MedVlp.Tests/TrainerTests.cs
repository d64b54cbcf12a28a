using System.Text.Json;
using MedVlp.Losses;
using MedVlp.Synthetic;
using MedVlp.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Tests;

/// <summary>Runs alone: determinism needs libtorch's process-wide random generator to itself.</summary>
[CollectionDefinition(nameof(TorchRandomState), DisableParallelization = true)]
public sealed class TorchRandomState;

[Collection(nameof(TorchRandomState))]
public sealed class TrainerTests
{
    private static readonly Lazy<IReadOnlyList<SyntheticBrainCase>> Cases = new(() => SyntheticBrainDataset.Generate(24, 3));

    private static TrainingBatch Batch(VisionLanguageModel model, int start, int count, bool withImageOnly = false)
    {
        var cases = Cases.Value.Skip(start).Take(count).ToArray();
        var volumes = model.PrepareVolumes(cases.Select(c => c.Volume).ToArray());
        if (model.Module.parameters().First().dtype == ScalarType.Float64)
        {
            var wide = volumes.to_type(ScalarType.Float64);
            volumes.Dispose();
            volumes = wide;
        }

        var reports = cases.Select((c, i) => withImageOnly && i % 3 == 2 ? "" : c.Report).ToArray();
        return new TrainingBatchCollator(model.Tokenizer, model.DualEncoder.MaxTextTokens).Collate(volumes, null, reports, 1, Enumerable.Range(start, count).ToArray());
    }

    private static Dictionary<string, float[]> Weights(nn.Module module) =>
        module.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.dtype == ScalarType.Float64
            ? kv.Value.detach().cpu().data<double>().ToArray().Select(x => (float)x).ToArray()
            : kv.Value.detach().cpu().data<float>().ToArray());

    private static Dictionary<string, double[]> Doubles(nn.Module module) =>
        module.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().cpu().to_type(ScalarType.Float64).data<double>().ToArray());

    private static DualEncoderObjective ClipSiglip(VisionLanguageModel model) =>
        new DualEncoderObjective(model, new CompositeLoss<ContrastiveInput>("both").Add("clip", new ClipLoss()).Add("siglip", new SigLipLoss(), weight: 0.5), learnLogitBias: true);

    [Fact]
    public void SchedulesEqualPyTorchSchedulers()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "golden", "schedules.json")));
        var baseLr = doc.RootElement.GetProperty("base_lr").GetDouble();
        var checkedCases = 0;
        foreach (var c in doc.RootElement.GetProperty("cases").EnumerateArray())
        {
            var settings = JsonSerializer.Deserialize<ScheduleSettings>(c.GetProperty("params").GetRawText(), TrainingRecipe.JsonOptions)! with { Type = c.GetProperty("type").GetString()! };
            Assert.Null(settings.Problem());
            var schedule = settings.Create();
            var expected = c.GetProperty("lr").EnumerateArray().Select(x => x.GetDouble()).ToArray();
            var total = c.GetProperty("steps").GetInt64();
            for (var s = 0; s < expected.Length; s++)
            {
                var actual = schedule.LearningRate(baseLr, s, total);
                Assert.True(Math.Abs(actual - expected[s]) <= 1e-7 * Math.Max(baseLr, Math.Abs(expected[s])),
                    $"{c.GetProperty("name").GetString()} step {s}: {actual} vs PyTorch {expected[s]}");
            }

            checkedCases++;
        }

        Assert.Equal(11, checkedCases);
    }

    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    public void AccumulatedMicroBatchesGiveTheUpdateOfOneLargeBatch(int parts)
    {
        // Dropout is off in the tiny test model; the contrastive losses see the negatives of the whole batch either way.
        // Float64, so that what is compared is the algorithm, not float32 summation order.
        using var big = TestModels.TinyModel(seed: 11);
        using var split = TestModels.TinyModel(seed: 11);
        using var bigObjective = ClipSiglip(big);
        using var splitObjective = ClipSiglip(split);
        foreach (var module in new[] { big.Module, split.Module, bigObjective.Loss, splitObjective.Loss })
        {
            module.to(ScalarType.Float64);
        }

        var options = new TrainerOptions { Optimizer = new OptimizerSettings { LearningRate = 5e-3 }, GradientClipNorm = 0.5 };
        using var bigTrainer = new Trainer(bigObjective, options);
        using var splitTrainer = new Trainer(splitObjective, options);
        big.Module.train();
        split.Module.train();
        var size = 8 / parts;
        for (var step = 0; step < 3; step++)
        {
            using var batch = Batch(big, step * 8, 8, withImageOnly: true);
            var bigLosses = bigTrainer.TrainStep([batch], 5e-3);
            var micro = Enumerable.Range(0, parts).Select(p => batch.Slice(p * size, size)).ToArray();
            var splitLosses = splitTrainer.TrainStep(micro, 5e-3);
            foreach (var m in micro)
            {
                m.Dispose();
            }

            foreach (var (term, value) in bigLosses)
            {
                Assert.True(Math.Abs(value - splitLosses[term]) <= 1e-6 * Math.Max(1, Math.Abs(value)), $"step {step} {term}: {value} vs {splitLosses[term]}");
            }
        }

        var a = Doubles(big.Module).Concat(Doubles(bigObjective.Loss)).ToArray();
        var b = Doubles(split.Module).Concat(Doubles(splitObjective.Loss)).ToDictionary(kv => kv.Key, kv => kv.Value);
        var worst = a.Max(kv => kv.Value.Zip(b[kv.Key], (x, y) => Math.Abs(x - y)).Max());
        Assert.True(worst <= 1e-6, $"largest weight difference {worst}");
        Assert.NotEqual(-10f, Weights(bigObjective.Loss)["logit_bias"][0]); // the loss's own parameter trained
    }

    [Fact]
    public void FrozenParametersStayByteIdenticalAndLossParametersTrain()
    {
        using var model = TestModels.TinyModel(seed: 5);
        using var objective = ClipSiglip(model);
        var textModel = model.Module.named_children().Single(c => c.name == "text_model").module;
        foreach (var p in textModel.parameters())
        {
            p.requires_grad = false;
        }

        var frozenBefore = Weights(textModel);
        var biasBefore = Weights(objective.Loss)["logit_bias"][0];
        var visionBefore = Weights(model.Module)["visual_projection.weight"];
        using var trainer = new Trainer(objective, new TrainerOptions { Steps = 3, Schedule = LearningRateSchedule.Constant() });
        Assert.True(trainer.Parameters.FrozenCount > 0);
        Assert.DoesNotContain(trainer.Parameters.Decay.Concat(trainer.Parameters.NoDecay), p => p.Name.StartsWith("model.text_model.", StringComparison.Ordinal));
        Assert.Contains(trainer.Parameters.NoDecay, p => p.Name == "loss.logit_bias");
        Assert.Contains(trainer.Parameters.NoDecay, p => p.Name == "model.logit_scale");
        Assert.Contains(trainer.Parameters.Decay, p => p.Name == "model.visual_projection.weight");
        var optimised = trainer.Optimizer.parameters().Count();
        Assert.Equal(trainer.Parameters.Decay.Count + trainer.Parameters.NoDecay.Count, optimised);

        var frozenModesDuringTraining = new List<bool>();
        using var data = new PreparedTrainingData([.. Cases.Value.Select(c => c.Volume)], [.. Cases.Value.Select(c => c.Report)],
            v => model.PrepareVolumes(v), new TrainingBatchCollator(model.Tokenizer, model.DualEncoder.MaxTextTokens), 8, seed: 1);
        trainer.Fit(data, progress: new SyncProgress<TrainingProgress>(_ => frozenModesDuringTraining.Add(textModel.training)));

        Assert.Equal([false, false, false], frozenModesDuringTraining); // frozen parts stay in eval mode
        var frozenAfter = Weights(textModel);
        foreach (var (name, values) in frozenBefore)
        {
            Assert.Equal(values, frozenAfter[name]);
        }

        Assert.NotEqual(biasBefore, Weights(objective.Loss)["logit_bias"][0]);
        Assert.NotEqual(visionBefore, Weights(model.Module)["visual_projection.weight"]);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void ATrainingStepLeavesNoTensorAlive(int parts)
    {
        using var model = TestModels.TinyModel();
        using var objective = ClipSiglip(model);
        using var trainer = new Trainer(objective, new TrainerOptions { EmaDecay = 0.9 });
        using var batch = Batch(model, 0, 8);
        var micro = parts == 1 ? [batch] : Enumerable.Range(0, parts).Select(p => batch.Slice(p * 4, 4)).ToArray();
        model.Module.train();
        trainer.TrainStep(micro, 1e-3); // the first step creates the optimizer state and the gradients
        var before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (var n = 0; n < 3; n++)
        {
            trainer.TrainStep(micro, 1e-3);
        }

        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        if (parts > 1)
        {
            foreach (var m in micro)
            {
                m.Dispose();
            }
        }
    }

    /// <summary>
    /// A stage with <see cref="TrainingStage.ResetOptimizer"/> starts from a new AdamW: its first step moves every weight
    /// with a gradient by the learning rate exactly (Adam's first bias-corrected step is lr * g / |g|), which a step of the
    /// carried-over optimizer does not.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void AStageThatResetsTheOptimizerStartsFromAFreshAdamW(bool reset)
    {
        using var model = TestModels.TinyModel(seed: 2);
        using var objective = ClipSiglip(model);
        const double lr = 5e-4;
        var options = new TrainerOptions
        {
            Optimizer = new OptimizerSettings { LearningRate = 1e-3, WeightDecay = 0, Epsilon = 1e-15 }, // so that lr * g / (|g| + eps) is lr
            Schedule = LearningRateSchedule.Constant(),
            Stages =
            [
                new TrainingStage { Name = "one", Steps = 2 },
                new TrainingStage { Name = "two", Steps = 2, LearningRate = lr, ResetOptimizer = reset },
            ],
        };
        using var trainer = new Trainer(objective, options);
        var first = trainer.Optimizer;
        using var data = new PreparedTrainingData([.. Cases.Value.Select(c => c.Volume)], [.. Cases.Value.Select(c => c.Report)],
            v => model.PrepareVolumes(v), new TrainingBatchCollator(model.Tokenizer, model.DualEncoder.MaxTextTokens), 4, seed: 1);
        var snapshots = new Dictionary<long, Dictionary<string, double[]>>();
        trainer.Fit(data, progress: new SnapshotProgress(p =>
        {
            if (p.Step is 2 or 3)
            {
                snapshots[p.Step] = Doubles(model.Module);
            }
        }));

        var changed = 0;
        var exactlyLr = 0;
        foreach (var (name, after) in snapshots[3])
        {
            var before = snapshots[2][name];
            for (var i = 0; i < after.Length; i++)
            {
                var delta = Math.Abs(after[i] - before[i]);
                if (delta > 1e-3 * lr)
                {
                    changed++;
                    exactlyLr += Math.Abs(delta - lr) <= 1e-2 * lr ? 1 : 0;
                }
            }
        }

        Assert.True(changed > 1000, $"only {changed} weights changed");
        var fraction = exactlyLr / (double)changed;
        Assert.Equal(reset, !ReferenceEquals(first, trainer.Optimizer));
        if (reset)
        {
            Assert.True(fraction > 0.95, $"after the reset {fraction:P1} of {changed} updates were the learning rate");
        }
        else
        {
            Assert.True(fraction < 0.5, $"without a reset {fraction:P1} of {changed} updates were the learning rate");
        }
    }

    private sealed class SnapshotProgress(Action<TrainingProgress> onStep) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => onStep(value);
    }

    [Fact]
    public void StagesSetLearningRatesAndLossWeightsAndTheRunWritesMetricsPlotsAndCheckpoints()
    {
        var dir = Directory.CreateTempSubdirectory("medvlp-trainer-").FullName;
        try
        {
            using var model = TestModels.TinyModel(seed: 2);
            using var objective = ClipSiglip(model);
            var options = new TrainerOptions
            {
                Optimizer = new OptimizerSettings { LearningRate = 1e-3 },
                Schedule = LearningRateSchedule.Constant(),
                Stages =
                [
                    new TrainingStage { Name = "one", Steps = 2, LossWeights = new Dictionary<string, double> { ["siglip"] = 0 } },
                    new TrainingStage { Name = "two", Steps = 3, LearningRate = 5e-4, LossWeights = new Dictionary<string, double> { ["siglip"] = 2 } },
                ],
                OutputDirectory = dir,
                CheckpointEvery = 2,
                KeepLastCheckpoints = 1,
                EvaluateEvery = 1,
                PlotEvery = 2,
            };
            using var trainer = new Trainer(objective, options);
            using var data = new PreparedTrainingData([.. Cases.Value.Select(c => c.Volume)], [.. Cases.Value.Select(c => c.Report)],
                v => model.PrepareVolumes(v), new TrainingBatchCollator(model.Tokenizer, model.DualEncoder.MaxTextTokens), 4, seed: 1);
            var summary = trainer.Fit(data, token => trainer.ValidationLoss(data, token));

            Assert.Equal(5, summary.StepsDone);
            Assert.Equal(["one", "one", "two", "two", "two"], summary.History.Select(h => h.Stage));
            Assert.Equal([1e-3, 1e-3, 5e-4, 5e-4, 5e-4], summary.History.Select(h => h.LearningRate));
            foreach (var h in summary.History)
            {
                var weight = h.Stage == "one" ? 0 : 2;
                Assert.Equal(h.Losses["clip"] + (weight * h.Losses["siglip"]), h.Losses["total"], 1e-5 * h.Losses["total"]);
            }

            var lines = File.ReadAllLines(Path.Combine(dir, "metrics.jsonl"));
            Assert.Equal(10, lines.Length); // 5 steps + 5 evaluations
            Assert.Contains("\"siglip\"", lines[0], StringComparison.Ordinal);
            Assert.Contains("val/loss", lines[1], StringComparison.Ordinal);
            foreach (var plot in new[] { "loss-total.png", "loss-clip.png", "loss-siglip.png", "learning-rate.png", "eval-val_loss.png" })
            {
                var bytes = File.ReadAllBytes(Path.Combine(dir, "plots", plot));
                Assert.True(bytes.Length > 1000 && bytes[1] == 'P' && bytes[2] == 'N' && bytes[3] == 'G', plot);
            }

            var checkpoints = new CheckpointStore(Path.Combine(dir, "checkpoints")).List();
            Assert.Equal([Path.Combine(dir, "checkpoints", "step-00000005.ckpt")], checkpoints);
            Assert.True(File.Exists(Path.Combine(dir, "checkpoints", CheckpointStore.BestFileName)));
            Assert.Empty(Directory.GetFiles(Path.Combine(dir, "checkpoints"), "*.tmp"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void EarlyStoppingEndsTheRunWhenTheMetricStopsImproving()
    {
        using var model = TestModels.TinyModel(seed: 2);
        using var objective = new DualEncoderObjective(model, new ClipLoss());
        using var trainer = new Trainer(objective, new TrainerOptions { Steps = 20, EvaluateEvery = 1, EarlyStoppingPatience = 2, BestMetric = "score", HigherIsBetter = true });
        using var data = new PreparedTrainingData([.. Cases.Value.Select(c => c.Volume)], [.. Cases.Value.Select(c => c.Report)],
            v => model.PrepareVolumes(v), new TrainingBatchCollator(model.Tokenizer, model.DualEncoder.MaxTextTokens), 4, seed: 1);
        var scores = new Queue<double>([0.1, 0.5, 0.4, 0.45, 0.9]);
        var summary = trainer.Fit(data, _ => new Dictionary<string, double> { ["score"] = scores.Dequeue() });
        Assert.True(summary.StoppedEarly);
        Assert.Equal(4, summary.StepsDone);
        Assert.Equal(0.5, summary.BestMetric);
    }

    [Fact]
    public void ResumingFromACheckpointEndsWithTheSameWeightsAsAnUninterruptedRun()
    {
        var full = Directory.CreateTempSubdirectory("medvlp-full-").FullName;
        var split = Directory.CreateTempSubdirectory("medvlp-split-").FullName;
        try
        {
            byte[] Run(string dir, long steps, bool resume, int stopAfter = int.MaxValue)
            {
                using var model = TestModels.TinyModel(seed: 4);
                using var objective = ClipSiglip(model);
                var options = new TrainerOptions { Steps = steps, OutputDirectory = dir, CheckpointEvery = 1, Resume = resume, Seed = 9, EmaDecay = 0.5 };
                using var trainer = new Trainer(objective, options);
                using var data = new PreparedTrainingData([.. Cases.Value.Select(c => c.Volume)], [.. Cases.Value.Select(c => c.Report)],
                    v => model.PrepareVolumes(v), new TrainingBatchCollator(model.Tokenizer, model.DualEncoder.MaxTextTokens, 0.5, seed: 9), 4, seed: 1);
                using var stop = new CancellationTokenSource();
                try
                {
                    trainer.Fit(data, progress: new SyncProgress<TrainingProgress>(p =>
                    {
                        if (p.Step >= stopAfter)
                        {
                            stop.Cancel();
                        }
                    }), cancellationToken: stop.Token);
                }
                catch (OperationCanceledException)
                {
                    Assert.True(stopAfter < steps);
                }

                return [.. Weights(model.Module).Concat(Weights(objective.Loss)).SelectMany(kv => kv.Value).SelectMany(BitConverter.GetBytes)];
            }

            var uninterrupted = Run(full, 9, resume: false);
            var stopped = Run(split, 9, resume: false, stopAfter: 4); // stops after step 4 (mid-epoch 1 of 6 batches)
            Assert.NotEqual(uninterrupted, stopped);
            var fresh = Run(Path.Combine(split, "fresh"), 9, resume: false);
            var resumed = Run(split, 9, resume: true);
            Assert.Equal(uninterrupted, resumed);
            Assert.Equal(uninterrupted, fresh); // the same seed in a new folder is the same run
        }
        finally
        {
            Directory.Delete(full, recursive: true);
            Directory.Delete(split, recursive: true);
        }
    }

    [Fact]
    public void ADamagedCheckpointIsSkipped()
    {
        var dir = Directory.CreateTempSubdirectory("medvlp-ckpt-").FullName;
        try
        {
            var store = new CheckpointStore(dir, keepLast: 5);
            store.Save(new CheckpointInfo { Step = 1 }, w => w.Write(1));
            var second = store.Save(new CheckpointInfo { Step = 2 }, w => w.Write(2));
            var bytes = File.ReadAllBytes(second);
            bytes[^50] ^= 0xFF;
            File.WriteAllBytes(second, bytes);
            var ex = Assert.Throws<InvalidDataException>(() => CheckpointStore.Read(second));
            Assert.Contains("SHA-256", ex.Message, StringComparison.Ordinal);
            Assert.Equal(1, store.LoadLatest()!.Value.Info.Step);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void ABadRecipeFileNamesTheField()
    {
        var path = Path.Combine(Path.GetTempPath(), $"medvlp-recipe-{Guid.NewGuid():N}.json");
        try
        {
            File.WriteAllText(path, """{ "name": "x", "optimizer": { "type": "adamw", "learning_rate": -1 } }""");
            var ex = Assert.Throws<RecipeFormatException>(() => TrainingRecipe.Load(path));
            Assert.Equal("optimizer.learning_rate", ex.Field);
            Assert.Contains(path, ex.Message, StringComparison.Ordinal);

            File.WriteAllText(path, """{ "name": "x", "data": { "batch_sise": 4 } }""");
            ex = Assert.Throws<RecipeFormatException>(() => TrainingRecipe.Load(path));
            Assert.Contains("batch_sise", ex.Message, StringComparison.Ordinal);

            File.WriteAllText(path, """{ "objectives": [ { "name": "a", "loss": "clip" } ], "stages": [ { "steps": 3, "loss_weights": { "b": 1 } } ] }""");
            ex = Assert.Throws<RecipeFormatException>(() => TrainingRecipe.Load(path));
            Assert.Equal("stages[0].loss_weights.b", ex.Field);

            File.WriteAllText(path, TrainingRecipe.Resolve("clip3d-siglip-staged").ToJson());
            Assert.Equal(TrainingRecipe.Resolve("clip3d-siglip-staged").ToJson(), TrainingRecipe.Load(path).ToJson());
        }
        finally
        {
            File.Delete(path);
        }
    }

    private sealed class SyncProgress<T>(Action<T> handler) : IProgress<T>
    {
        public void Report(T value) => handler(value);
    }
}
