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
    private static VolumeTextPair[] Pairs(int count, int seed) =>
        SyntheticBrainDataset.Generate(count, seed).Select(c => new VolumeTextPair(c.Volume, c.Report)).ToArray();

    [Fact]
    public void ATrainingStepLeavesNoTensorAlive()
    {
        using var model = TestModels.TinyModel();
        using var trainer = new ContrastiveTrainer(model, new ContrastiveTrainerOptions { BatchSize = 4 });
        var pairs = Pairs(4, 1);
        using var volumes = model.PrepareVolumes(pairs.Select(p => p.Volume).ToArray());
        var (ids, mask) = model.PrepareTexts(pairs.Select(p => p.Text).ToArray());
        using (ids)
        using (mask)
        {
            model.Module.train();
            trainer.Step(volumes, ids, mask, 1e-3); // the first step creates the optimizer state and the gradients
            var before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            for (var n = 0; n < 3; n++)
            {
                trainer.Step(volumes, ids, mask, 1e-3);
            }

            var after = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            Assert.Equal(before, after);
        }
    }

    [Fact]
    public void TrainingIsDeterministicAndLowersTheLoss()
    {
        var pairs = Pairs(24, 2);
        var options = new ContrastiveTrainerOptions { Epochs = 6, BatchSize = 8, LearningRate = 3e-3, Seed = 9 };
        TrainingHistory first, second;
        float[] embeddingFirst, embeddingSecond;
        using (var model = TestModels.TinyModel(seed: 5))
        using (var trainer = new ContrastiveTrainer(model, options))
        {
            first = trainer.Train(pairs);
            embeddingFirst = model.VolumeEncoder.Embed(pairs[0].Volume);
        }

        using (var model = TestModels.TinyModel(seed: 5))
        using (var trainer = new ContrastiveTrainer(model, options))
        {
            second = trainer.Train(pairs);
            embeddingSecond = model.VolumeEncoder.Embed(pairs[0].Volume);
        }

        Assert.Equal(18, first.Losses.Count);
        Assert.Equal(3, first.StepsPerEpoch);
        Assert.Equal(8, first.BatchSize);
        Assert.Equal(first.Losses, second.Losses);
        Assert.Equal(embeddingFirst, embeddingSecond);
        Assert.True(first.Losses.TakeLast(3).Average() < first.Losses.Take(3).Average() - 0.2,
            $"loss should fall: first epoch {first.Losses.Take(3).Average()}, last {first.Losses.TakeLast(3).Average()}");
    }

    [Fact]
    public void ReportsProgressAndHonoursCancellation()
    {
        var pairs = Pairs(8, 3);
        using var model = TestModels.TinyModel();
        using var trainer = new ContrastiveTrainer(model, new ContrastiveTrainerOptions { Epochs = 5, BatchSize = 4 });
        using var cts = new CancellationTokenSource();
        var reports = new List<TrainingProgress>();
        var progress = new SyncProgress<TrainingProgress>(p =>
        {
            reports.Add(p);
            if (p.Step == 3)
            {
                cts.Cancel();
            }
        });
        Assert.Throws<OperationCanceledException>(() => trainer.Train(pairs, progress, cts.Token));
        Assert.Equal([1, 2, 3], reports.Select(r => r.Step));
        Assert.All(reports, r => Assert.Equal(10, r.TotalSteps));
        Assert.False(model.Module.training, "the model is back in evaluation mode");
    }

    [Fact]
    public void LearningRateWarmsUpThenDecaysByCosine()
    {
        using var model = TestModels.TinyModel();
        using var trainer = new ContrastiveTrainer(model, new ContrastiveTrainerOptions { LearningRate = 1.0, WarmupFraction = 0.1 });
        Assert.Equal(0.1, trainer.LearningRateAt(0, 100), 12);
        Assert.Equal(1.0, trainer.LearningRateAt(9, 100), 12);
        Assert.Equal(1.0, trainer.LearningRateAt(10, 100), 12);
        Assert.Equal(0.5, trainer.LearningRateAt(10 + 89 / 2, 100), 1);
        Assert.Equal(0.0, trainer.LearningRateAt(99, 100), 12);
    }

    [Fact]
    public void NoWeightDecayOnBiasesNormsTokensAndTheLogitScale()
    {
        using var model = TestModels.TinyModel();
        var decayed = model.Module.named_parameters().Where(p => ContrastiveTrainer.UsesWeightDecay(p.name, p.parameter)).Select(p => p.name).ToHashSet();
        Assert.Contains("vision_model.blocks.0.attn.qkv.weight", decayed);
        Assert.Contains("text_model.encoder.layer.0.attention.self.query.weight", decayed);
        Assert.Contains("text_model.embeddings.word_embeddings.weight", decayed);
        Assert.DoesNotContain("vision_model.blocks.0.attn.qkv.bias", decayed);
        Assert.DoesNotContain("text_model.embeddings.LayerNorm.weight", decayed);
        Assert.DoesNotContain("vision_model.norm.weight", decayed);
        Assert.DoesNotContain("vision_model.pos_embed", decayed);
        Assert.DoesNotContain("vision_model.cls_token", decayed);
        Assert.DoesNotContain("logit_scale", decayed);
    }

    private sealed class SyncProgress<T>(Action<T> handler) : IProgress<T>
    {
        public void Report(T value) => handler(value);
    }
}
