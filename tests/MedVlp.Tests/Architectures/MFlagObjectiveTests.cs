using MedVlp.Architectures.MFlag;
using MedVlp.Modeling;
using MedVlp.Testing;
using MedVlp.Text;
using MedVlp.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Tests.Architectures;

/// <summary>M-FLAG through the <see cref="Trainer"/>: only the image side trains, a step leaves no tensor alive, and the
/// recipes validate.</summary>
[Collection(nameof(TorchRandomState))]
public sealed class MFlagObjectiveTests
{
    [Fact]
    public void ATrainerStepTrainsTheImageSideAndLeavesNoTensorAlive()
    {
        using var model = (MFlagModel)ModelRegistry.Create("mflag", ModelRegistry.Tiny, new ModelCreateOptions { Freeze = MFlagModel.DefaultFreeze, Seed = 5 });
        model.CacheFrozenTextOutputs = true;
        using var objective = new MFlagObjective(model);
        using var trainer = new Trainer(objective, new TrainerOptions { Optimizer = new OptimizerSettings { LearningRate = 1e-3 }, Steps = 10 });
        Assert.DoesNotContain(trainer.Parameters.All, p => model.TextEncoder.parameters().Any(t => ReferenceEquals(t, p)));
        using var images = randn(4, 1, 64, 64);
        using var ids = tensor(new long[] { 101, 7, 8, 102, 101, 9, 102, 0, 101, 5, 6, 102, 101, 11, 102, 0 }, [4, 4]);
        using var mask = ids.ne(0).to(ScalarType.Int64);
        var losses = new List<double>();
        void Step()
        {
            using var batch = new TrainingBatch(images.alias(), null, ids.alias(), mask.alias(), [true, true, true, true]);
            losses.Add(trainer.TrainStep([batch], 1e-3)["total"]);
        }

        Step();
        var before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (var i = 0; i < 3; i++)
        {
            Step();
        }

        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        Assert.All(model.TextEncoder.parameters(), p => Assert.Null(p.grad));
        Assert.True(losses[^1] < losses[0], $"the loss should fall on a repeated batch: {string.Join(", ", losses)}");
        using var imageOnly = new TrainingBatch(images.alias(), null, null, null, new bool[4]);
        Assert.Throws<ArgumentException>(() => objective.Encode(imageOnly));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void FrozenImageNormStatisticsStayAtInitialisationWhileScaleAndShiftTrain(bool freeze)
    {
        using var model = (MFlagModel)ModelRegistry.Create("mflag", ModelRegistry.Tiny, new ModelCreateOptions { Freeze = MFlagModel.DefaultFreeze, Seed = 5 });
        using var objective = new MFlagObjective(model, freezeImageNormStatistics: freeze);
        Assert.Equal(freeze, objective.FreezesImageNormStatistics);
        var norms = FrozenNormAssert.Norms(model.ImageEncoder);
        using var trainer = new Trainer(objective, new TrainerOptions { Optimizer = new OptimizerSettings { LearningRate = 1e-2 }, Steps = 2 });
        using var images = rand(4, 1, 64, 64);
        using var ids = tensor(new long[] { 101, 7, 8, 102, 101, 9, 102, 0, 101, 5, 6, 102, 101, 11, 102, 0 }, [4, 4]);
        using var mask = ids.ne(0).to(ScalarType.Int64);
        model.train(); // as Trainer.Fit does before its steps
        for (var i = 0; i < 2; i++)
        {
            using var batch = new TrainingBatch(images.alias(), null, ids.alias(), mask.alias(), [true, true, true, true]);
            trainer.TrainStep([batch], 1e-2);
        }

        FrozenNormAssert.AfterTraining(norms, freeze);
        using var recipeModel = TrainingRecipe.Resolve("mflag").CreateModel(WordPieceTextTokenizer.FromVocabularyFile(TestData.File("bert/vocab.txt")));
        using var recipeObjective = (MFlagObjective)TrainingRecipe.Resolve("mflag").Plugin!.CreateObjective(TrainingRecipe.Resolve("mflag"), recipeModel, null);
        Assert.True(recipeObjective.FreezesImageNormStatistics);
    }

    [Fact]
    public void PaperRecipesValidateAndBuildTheirModels()
    {
        foreach (var name in new[] { "mflag", "mflag-full", "lvmmed", "lvmmed-full" })
        {
            var recipe = TrainingRecipe.Resolve(name);
            recipe.Validate();
            Assert.NotNull(recipe.Plugin);
            Assert.Equal(name.StartsWith("lvmmed", StringComparison.Ordinal) ? 2 : 1, recipe.ViewCount);
        }

        var full = TrainingRecipe.Resolve("mflag-full");
        Assert.Equal(2e-5, full.Optimizer.LearningRate);
        Assert.Equal(0.05, full.Optimizer.WeightDecay);
        Assert.Equal("cosine_restarts", full.Schedule.Type);
        var schedule = full.Schedule.Create();
        Assert.Equal(2e-5, schedule.LearningRate(2e-5, 0, 1000), 12);
        Assert.Equal(2e-5, schedule.LearningRate(2e-5, 400, 1000), 12); // T_0 = 40% of the run: a warm restart at step 400
        Assert.True(schedule.LearningRate(2e-5, 399, 1000) < 2e-8); // down to eta_min 1e-8 just before it
        var bad = TrainingRecipe.Resolve("lvmmed") with { Objectives = [new ObjectiveSettings { Name = "x", Loss = "clip" }] };
        var ex = Assert.Throws<RecipeFormatException>(() => bad.Validate());
        Assert.Contains("graph_matching", ex.Message, StringComparison.Ordinal);
    }
}
