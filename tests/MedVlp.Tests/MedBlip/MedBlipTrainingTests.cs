using MedVlp.Architectures.MedBlip;
using MedVlp.Modeling;
using MedVlp.Synthetic;
using MedVlp.Testing;
using MedVlp.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Tests.MedBlip;

/// <summary>MedBLIP on the shared <see cref="Trainer"/> (objective, recipe) and its frozen parts in half precision.</summary>
[Collection(nameof(TorchRandomState))] // seeds and trains: kept apart from the tests that check seeded weights
public sealed class MedBlipTrainingTests
{
    private static readonly Lazy<IReadOnlyList<SyntheticBrainCase>> Cases = new(() => SyntheticBrainDataset.Generate(4, 11));

    private static VisionLanguageModel TinyModel(int seed = 3) =>
        VisionLanguageModel.Create(MedBlipConfig.Tiny(TestModels.Tokenizer.VocabularySize), TestModels.Tokenizer, TrainingRecipe.Preprocessing(32), seed);

    private static TrainingBatch Batch(VisionLanguageModel model)
    {
        var cases = Cases.Value;
        var collator = new TrainingBatchCollator(model.Collator, new MedVlp.Data.TextCollation { MaxTokens = 100 });
        return collator.Collate(model.PrepareVolumesForTraining([.. cases.Select(c => c.Volume)]), null, [.. cases.Select(c => c.Ehr)], 1, [0, 1, 2, 3]);
    }

    [Fact]
    public void TheObjectiveGivesTheModelsLossAndAccumulatesExactly()
    {
        using var model = TinyModel();
        using var objective = new MedBlipObjective(model);
        var medblip = (MedBlipModel)model.Module;
        using var batch = Batch(model);
        using (var scope = NewDisposeScope())
        {
            using var viaObjective = objective.ComputeLoss(objective.Encode(batch));
            using var direct = medblip.ComputeLoss(objective.Text.Batch(batch.Volumes, batch.Reports!));
            foreach (var term in new[] { "itc_report", "itc_qa", "lm" })
            {
                Assert.Equal(direct.Terms[term].item<float>(), viaObjective.Terms[term].item<float>(), 5);
            }
        }

        // One step of plain SGD (lr 1, no momentum) moves each parameter by its gradient: a whole batch and two micro-batches
        // of two must move the same parameters the same way (the LM term is a mean over all the batch's answer tokens).
        var sgd = new TrainerOptions { Optimizer = new OptimizerSettings { Type = "sgd", LearningRate = 1, Momentum = 0, WeightDecay = 0 }, GradientClipNorm = 0, Steps = 1 };
        var after = new List<Dictionary<string, Tensor>>();
        foreach (var micro in new[] { 1, 2 })
        {
            using var copy = TinyModel();
            using var copyObjective = new MedBlipObjective(copy);
            using var trainer = new Trainer(copyObjective, sgd);
            using var copyBatch = Batch(copy);
            using var first = copyBatch.Slice(0, 2);
            using var second = copyBatch.Slice(2, 2);
            trainer.TrainStep(micro == 1 ? [copyBatch] : [first, second], 1.0);
            after.Add(TrainableSnapshots.Take(copy.Module));
        }

        Assert.True(after[0].Count > 10);
        TrainableSnapshots.AssertSameAndDispose(after[0], after[1], 2e-5);
    }

    [Fact]
    public void TrainerStepsLeaveNoTensorAliveAndTheLossFalls()
    {
        using var model = TinyModel();
        using var objective = new MedBlipObjective(model);
        var recipe = TrainingRecipe.Resolve("medblip-demo") with { Steps = 6 };
        using var trainer = new Trainer(objective, recipe.CreateTrainerOptions(outputDirectory: null));
        using var batch = Batch(model);
        var losses = new List<double>();
        for (var step = 0; step < 6; step++)
        {
            var before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            losses.Add(trainer.TrainStep([batch], 1e-3)["total"]);
            if (step > 0)
            {
                Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
            }
        }

        Assert.True(losses[^1] < losses[0], $"the loss should fall on a fixed batch: {string.Join(", ", losses)}");
        var medblip = (MedBlipModel)model.Module;
        Assert.All(medblip.LanguageModel.parameters(), p => Assert.False(p.requires_grad));
        Assert.DoesNotContain(trainer.Parameters.Decay.Concat(trainer.Parameters.NoDecay), p => p.Name.Contains("lm_model", StringComparison.Ordinal) || p.Name.Contains(".blocks.", StringComparison.Ordinal));
    }

    [Fact]
    public void BatchesWithoutReportTextAreRejected()
    {
        using var model = TinyModel();
        using var objective = new MedBlipObjective(model);
        using var batch = new TrainingBatch(zeros([2L, 1, 32, 32, 32]), null, null, null, [false, false]);
        var e = Assert.Throws<ArgumentException>(() => objective.Encode(batch));
        Assert.Contains("Reports", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RecipesNameMedBlipAndItsLoss()
    {
        var paper = TrainingRecipe.Resolve("medblip");
        Assert.Equal(("medblip", "full", 7, 2e-5), (paper.Architecture, paper.Size, paper.Data.BatchSize, paper.Optimizer.LearningRate));
        var roundTrip = System.Text.Json.JsonSerializer.Deserialize<TrainingRecipe>(paper.ToJson(), TrainingRecipe.JsonOptions)!;
        roundTrip.Validate();
        var bad = Assert.Throws<RecipeFormatException>(() => (paper with { Objectives = [new ObjectiveSettings { Name = "c", Loss = "clip" }] }).Validate());
        Assert.Contains("objectives[0].loss", bad.Message, StringComparison.Ordinal);
        Assert.Contains("medblip", bad.Message, StringComparison.Ordinal);
        var unknown = Assert.Throws<RecipeFormatException>(() => (paper with { Architecture = "nope" }).Validate());
        Assert.Matches("available: clip3d, .*medblip", unknown.Message);

        var demo = TrainingRecipe.Resolve("medblip-demo");
        using var model = demo.CreateModel(TestModels.Tokenizer);
        Assert.IsType<MedBlipModel>(model.Module);
        Assert.Equal(100, demo.MaxTextTokens(model));
        using var objective = demo.CreateObjective(model);
        Assert.IsType<MedBlipObjective>(objective);
        var example = Cases.Value[0];
        Assert.Equal(example.Ehr, demo.SyntheticReport(example));
        Assert.Equal(example.Report, TrainingRecipe.Resolve("clip3d-demo").SyntheticReport(example));
    }

    [Theory]
    [InlineData(ScalarType.Float16, 2e-3)]
    [InlineData(ScalarType.BFloat16, 2e-2)]
    public void FrozenPartsInHalfPrecisionKeepTheLossWithinTolerance(ScalarType dtype, double relativeTolerance)
    {
        using var model = MedBlipParityTests.GoldenModel();
        using var scope = NewDisposeScope();
        var batch = MedBlipParityTests.GoldenBatch();
        double fp32;
        using (var loss = model.ComputeLoss(batch))
        {
            fp32 = loss.Total.item<float>();
        }

        model.SetFrozenPrecision(dtype);
        Assert.Equal(dtype, model.LanguageModelDtype);
        Assert.Equal(dtype, model.VisionBlocksDtype);
        Assert.All(model.TrainableParameters(), p => Assert.Equal(ScalarType.Float32, p.Parameter.dtype));
        using var half = model.ComputeLoss(batch);
        var value = half.Total.item<float>();
        Assert.True(Math.Abs(value - fp32) <= relativeTolerance * Math.Abs(fp32), $"{dtype}: loss {value} vs float32 {fp32}");
        half.Total.backward();
        var grad = model.named_parameters().Single(p => p.name == "visual_encoder.patch_embed_3d.proj.weight").parameter.grad;
        Assert.NotNull(grad);
        Assert.True(grad!.abs().sum().item<float>() > 0 && grad.isfinite().all().item<bool>(), "the 3D embedding must get a finite gradient through the half-precision blocks");

        var generated = model.GenerateGreedy(batch.Volumes, [[1, 2, 3], [4, 5], [6]], 3, endOfText: 39);
        Assert.Equal(3, generated.Count);
        Assert.Throws<ArgumentException>(() => model.SetFrozenPrecision(ScalarType.Float64));
        model.SetFrozenPrecision(ScalarType.Float32); // back to float32 (the 16-bit rounding of the frozen weights stays)
        Assert.Equal(ScalarType.Float32, model.LanguageModelDtype);
        Assert.Equal(ScalarType.Float32, model.VisionBlocksDtype);
        using var back = model.ComputeLoss(batch);
        Assert.True(Math.Abs(back.Total.item<float>() - value) <= relativeTolerance * Math.Abs(fp32), "float32 compute on the rounded weights");
    }
}
