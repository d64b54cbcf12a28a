using System.Diagnostics;
using MedVlp.Architectures.Prior;
using MedVlp.Evaluation;
using MedVlp.Inference;
using MedVlp.Losses;
using MedVlp.Modeling;
using MedVlp.Synthetic;
using MedVlp.Testing;
using MedVlp.Text;
using MedVlp.Training;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MedVlp.Tests.Architectures;

/// <summary>
/// PRIOR's recipes (<c>prior</c>, <c>prior-full</c>, <c>prior3d</c>, <c>prior3d-full</c>) through the <see cref="Trainer"/>
/// on synthetic brain MRIs with their reports: the trained encoder beats its own random initialisation on a
/// cross-validated linear probe of the diagnosis on held-out cases and classifies it zero-shot above chance; the stages
/// switch the computation as released; a step leaves no tensor alive; a trained model saves and loads as a package that
/// embeds and classifies the same.
/// </summary>
[Collection(nameof(TorchRandomState))]
public sealed class PriorTrainingTests(ITestOutputHelper output)
{
    private static readonly string[] DiagnosisClasses = [.. CognitiveDiagnosisNames.All.Select(d => d.ToString())];

    /// <summary>One libtorch thread for the test's duration (the measured numbers are for one; more threads on a shared
    /// two-core machine cost 20 times the CPU time), restored after.</summary>
    private static OneThread SingleThread() => new(get_num_threads());

    private static WordPieceTextTokenizer Tokenizer() => WordPieceTextTokenizer.FromVocabularyFile(TestData.File("bert/vocab.txt"));

    private static IReadOnlyList<ZeroShotLabel> ObservedLabels() =>
        [.. CognitiveDiagnosisNames.All.Select(d => new ZeroShotLabel(d.Code(), $"{d.LabelName()} is observed"))];

    [Fact]
    public void TheTinyRecipeBeatsRandomInitialisationOnALinearProbeAndClassifiesZeroShot()
    {
        const int Seed = 13;
        using var thread = SingleThread();
        var tokenizer = Tokenizer();
        var recipe = TrainingRecipe.Resolve("prior") with { Seed = Seed };
        var train = SyntheticBrainDataset.Generate(480, Seed);
        var heldOut = SyntheticBrainDataset.Generate(180, Seed, firstIndex: 10_000);
        var labels = heldOut.Select(c => (int)c.Diagnosis).ToArray();
        using var model = recipe.CreateModel(tokenizer);
        using var objective = recipe.CreateObjective(model);
        var before = Probe(model, heldOut, labels, Seed);
        var zeroBefore = ZeroShotAccuracy(model, heldOut);

        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        using var data = new PreparedTrainingData([.. train.Select(c => c.Volume)], [.. train.Select(c => c.Report)], v => model.PrepareVolumesForTraining(v),
            new TrainingBatchCollator(tokenizer, recipe.MaxTextTokens(model)), recipe.Data.BatchSize, Seed);
        using var trainer = new Trainer(objective, recipe.CreateTrainerOptions(null));
        var summary = trainer.Fit(data);
        var seconds = (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds;
        var stages = summary.History.GroupBy(h => h.Stage).ToDictionary(g => g.Key, g => g.Last().Losses);
        Assert.Equal(230, summary.StepsDone);
        Assert.Equal(["stage1", "stage2", "stage3"], stages.Keys.Order(StringComparer.Ordinal));
        Assert.DoesNotContain("proto", stages["stage1"].Keys);
        Assert.Contains("proto", stages["stage2"].Keys);
        Assert.DoesNotContain("rec_image", stages["stage2"].Keys);
        Assert.All(PriorLossWeights.Names, n => Assert.Contains(n, stages["stage3"].Keys));

        var after = Probe(model, heldOut, labels, Seed);
        var zeroAfter = ZeroShotAccuracy(model, heldOut);
        output.WriteLine($"{summary.StepsDone} steps in {seconds:F1} s of CPU; stage-1 global loss {summary.History[0].Losses["global"]:F3} -> {stages["stage1"]["global"]:F3}");
        output.WriteLine($"linear probe of the global embedding (5-fold, 180 held-out cases): macro AUROC {before.MacroAuroc:F3} -> {after.MacroAuroc:F3}, accuracy {before.Accuracy:F3} -> {after.Accuracy:F3}");
        output.WriteLine($"zero-shot (\"{{class}} is observed\", global + 0.5 local): accuracy {zeroBefore:F3} -> {zeroAfter:F3}");

        // Measured (seed 13): macro AUROC 0.778 -> 0.925, accuracy 0.594 -> 0.794; zero-shot 0.333 -> 0.811.
        // Seeds 11, 12, 14 gain +0.117, +0.055, +0.049 AUROC: the test asks for +0.05 at seed 13 and zero-shot above 0.45 (chance 0.333).
        Assert.True(after.MacroAuroc >= before.MacroAuroc + 0.05, $"macro AUROC {before.MacroAuroc:F3} -> {after.MacroAuroc:F3}: training must add at least 0.05");
        Assert.True(zeroAfter > 0.45, $"zero-shot accuracy {zeroBefore:F3} -> {zeroAfter:F3}: expected above 0.45 (chance 0.333)");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ATrainerStepOfEveryStageLeavesNoTensorAlive(bool volumes)
    {
        using var thread = SingleThread();
        var tokenizer = Tokenizer();
        var recipe = TrainingRecipe.Resolve(volumes ? "prior3d" : "prior");
        using var model = recipe.CreateModel(tokenizer, seed: 3);
        using var objective = recipe.CreateObjective(model);
        var cases = SyntheticBrainDataset.Generate(4, 3);
        using var images = model.PrepareVolumesForTraining([.. cases.Select(c => c.Volume)]);
        Assert.Equal(volumes ? 5 : 4, images.dim());
        var text = tokenizer.EncodeBatch([.. cases.Select(c => c.Report)], recipe.MaxTextTokens(model));
        using var ids = tensor(text.Ids.ToArray(), [text.BatchSize, text.SequenceLength]);
        using var mask = tensor(text.AttentionMask.ToArray(), [text.BatchSize, text.SequenceLength]);
        var weights = new[] { PriorLossWeights.Stage1, PriorLossWeights.Stage2, PriorLossWeights.Stage3 };
        using var trainer = new Trainer(objective, new TrainerOptions { Optimizer = recipe.Optimizer, Steps = 10 });
        foreach (var stage in weights)
        {
            foreach (var name in PriorLossWeights.Names)
            {
                objective.SetLossWeight(name, stage[name]);
            }

            IReadOnlyDictionary<string, double> Step()
            {
                using var batch = new TrainingBatch(images.alias(), null, ids.alias(), mask.alias(), [true, true, true, true]);
                return trainer.TrainStep([batch], 1e-3);
            }

            var first = Step();
            var before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            Step();

            Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
            Assert.True(double.IsFinite(first["total"]));
            Assert.Equal(stage.Reconstructs, first.ContainsKey("rec_image"));
        }
    }

    [Theory]
    [InlineData("prior")]
    [InlineData("prior3d")]
    public void ATrainedModelSavesAndLoadsAsAPackageThatEmbedsAndClassifiesTheSame(string recipeName)
    {
        using var thread = SingleThread();
        var tokenizer = Tokenizer();
        var recipe = TrainingRecipe.Resolve(recipeName) with { Seed = 5 };
        var cases = SyntheticBrainDataset.Generate(8, 5);
        using var dir = TestData.NewTempFolder();
        using var model = recipe.CreateModel(tokenizer);
        using (var objective = recipe.CreateObjective(model))
        using (var data = new PreparedTrainingData([.. cases.Select(c => c.Volume)], [.. cases.Select(c => c.Report)], v => model.PrepareVolumesForTraining(v),
            new TrainingBatchCollator(tokenizer, recipe.MaxTextTokens(model)), 4, 5))
        using (var trainer = new Trainer(objective, new TrainerOptions
        {
            Optimizer = recipe.Optimizer,
            Stages = [.. recipe.Stages.Select(s => new TrainingStage { Name = s.Name, Steps = 1, LearningRate = s.LearningRate, LossWeights = s.LossWeights })],
        }))
        {
            trainer.Fit(data);
        }

        model.Save(dir.Path);
        using var loaded = VisionLanguageModel.Load(dir.Path);
        Assert.Equal("prior", loaded.Architecture);
        var config = Assert.IsType<PriorConfig>(loaded.Config);
        Assert.Equal(PriorConfig.SentenceEnds(tokenizer), config.SentenceEndTokenIds);
        Assert.Equal(recipeName == "prior3d" ? 3 : 2, config.Image.SpatialDims);
        Assert.Equal(PriorRecipe.TinyTemperature, config.Temperature);

        var volumes = cases.Take(3).Select(c => c.Volume).ToArray();
        var expected = model.VolumeEncoder.Embed(volumes);
        var actual = loaded.VolumeEncoder.Embed(volumes);
        for (var i = 0; i < volumes.Length; i++)
        {
            Assert.Equal(32, actual[i].Length);
            Assert.Equal(expected[i], actual[i]);
        }

        var reports = cases.Take(3).Select(c => c.Report).ToArray();
        var textBefore = model.TextEncoder.Embed(reports);
        var textAfter = loaded.TextEncoder.Embed(reports);
        Assert.Equal(textBefore[0], textAfter[0]);
        Assert.NotEqual(textAfter[0], textAfter[1]);

        var zeroBefore = model.CreateZeroShotClassifier(ObservedLabels()).Classify(volumes);
        var zeroAfter = loaded.CreateZeroShotClassifier(ObservedLabels()).Classify(volumes);
        for (var i = 0; i < volumes.Length; i++)
        {
            Assert.Equal(zeroBefore[i].Probabilities, zeroAfter[i].Probabilities);
            Assert.Equal(1.0, zeroAfter[i].Probabilities.Sum(), 5);
        }
    }

    [Fact]
    public void TheZeroShotClassifierAppliesTheReleasedRuleAndTextsSplitIntoSentencesAsInTraining()
    {
        var tokenizer = Tokenizer();
        using var vlm = TrainingRecipe.Resolve("prior").CreateModel(tokenizer, seed: 9);
        var model = (PriorModel)vlm.Module;
        var cases = SyntheticBrainDataset.Generate(4, 9);
        var labels = ObservedLabels();
        var predictions = vlm.CreateZeroShotClassifier(labels).Classify([.. cases.Select(c => c.Volume)]);

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var images = vlm.PrepareVolumesForTraining([.. cases.Select(c => c.Volume)]);

        // One prompt per class, padded one past the longest so each keeps its [SEP]: the released rule of PriorModel.ZeroShotScores.
        var prompts = labels.Select(l => l.Prompts[0]).ToArray();
        var longest = tokenizer.EncodeBatch(prompts, model.MaxTextTokens).SequenceLength;
        var batch = tokenizer.EncodeBatch(prompts, model.MaxTextTokens, new TokenBatchOptions { PadToLength = longest + 1 });
        model.PrototypeBank.Options.Noise = PrototypeNoise.None;
        var scores = model.ZeroShotScores(images, tensor(batch.Ids.ToArray(), [batch.BatchSize, batch.SequenceLength]), tensor(batch.AttentionMask.ToArray(), [batch.BatchSize, batch.SequenceLength]));
        for (var i = 0; i < cases.Count; i++)
        {
            for (var k = 0; k < labels.Count; k++)
            {
                Assert.Equal(scores[i, k].ToSingle() / 1.5f, predictions[i].Probabilities[k], 5);
            }

            Assert.Equal(scores[i].argmax().ToInt64(), predictions[i].LabelIndex);
        }

        // A report embeds as in training: sentences split at "." (PriorModel.SentenceIndex), the bank without noise, pooled.
        var reports = tokenizer.EncodeBatch([.. cases.Select(c => c.Report)], model.MaxTextTokens);
        var ids = tensor(reports.Ids.ToArray(), [reports.BatchSize, reports.SequenceLength]);
        var mask = tensor(reports.AttentionMask.ToArray(), [reports.BatchSize, reports.SequenceLength]);
        var special = new HashSet<long>(tokenizer.Encode("", 8).Select(i => (long)i)) { tokenizer.PaddingTokenId };
        var index = PriorModel.SentenceIndex(ids, mask, PriorConfig.SentenceEnds(tokenizer).Select(i => (long)i).ToHashSet(), special);
        Assert.True(index.max().ToInt64() >= 5, "a synthetic report has several sentences");
        var (sentences, sentenceMask) = model.EncodeSentences(ids, mask, index);
        var rebuilt = model.PrototypeBank.forward(sentences).Reconstructed * sentenceMask.to(sentences.dtype).unsqueeze(2);
        var reference = F.normalize(model.GlobalText(rebuilt, sentenceMask), dim: -1);
        var embedded = model.EncodeTexts(ids, mask);
        Assert.True(embedded.allclose(reference, rtol: 1e-5, atol: 1e-6), $"largest difference {(embedded - reference).abs().max().ToSingle()}");
    }

    [Fact]
    public void RecipesHoldTheReleasedScheduleAndValidateTheirStageParts()
    {
        foreach (var name in new[] { "prior", "prior-full", "prior3d", "prior3d-full" })
        {
            var recipe = TrainingRecipe.Resolve(name);
            recipe.Validate();
            Assert.NotNull(recipe.Plugin);
            Assert.Equal(3, recipe.Stages.Count);
        }

        var full = TrainingRecipe.Resolve("prior-full");
        Assert.Equal(ModelRegistry.Full, full.Size);
        Assert.Equal("adamw", full.Optimizer.Type);
        Assert.Equal(1e-6, full.Optimizer.WeightDecay);
        Assert.Equal(98, full.Data.BatchSize);
        Assert.Equal(0, full.GradientClipNorm);
        Assert.Equal([20, 30, 100], full.Stages.Select(s => s.Epochs));
        Assert.Equal([1e-5, 1e-5, 5e-6], full.Stages.Select(s => s.LearningRate!.Value));
        var released = new[] { PriorLossWeights.Stage1, PriorLossWeights.Stage2, PriorLossWeights.Stage3 };
        for (var i = 0; i < 3; i++)
        {
            Assert.All(PriorLossWeights.Names, n => Assert.Equal(released[i][n], full.Stages[i].LossWeights[n]));
        }

        Assert.Equal(10, full.Stages[2].LossWeights["global"]);
        var schedule = full.Schedule.Create();
        Assert.Equal(1e-5 / 5, schedule.LearningRate(1e-5, 0, 100), 15); // 5% warm-up
        Assert.Equal(1e-5, schedule.LearningRate(1e-5, 4, 100), 15);
        var model = (PriorConfig)full.CreateModelConfig(28996);
        Assert.Equal(0.01, model.Temperature);
        Assert.Equal(2048, model.Image.FeatureWidth);

        var tiny = TrainingRecipe.Resolve("prior");
        Assert.Equal([150L, 40L, 40L], tiny.Stages.Select(s => s.Steps));
        var json = TrainingRecipe.Load(WriteJson(tiny.ToJson()));
        Assert.Equal(tiny.Stages.Select(s => s.LossWeights["proto"]), json.Stages.Select(s => s.LossWeights["proto"]));
        var bad = tiny with { Stages = [new StageSettings { Name = "x", Steps = 1, LossWeights = new Dictionary<string, double> { ["protos"] = 1 } }] };
        var ex = Assert.Throws<RecipeFormatException>(() => bad.Validate());
        Assert.Equal("stages[0].loss_weights.protos", ex.Field);
        Assert.Contains("rec_image", ex.Message, StringComparison.Ordinal);
    }

    private static string WriteJson(string json)
    {
        var path = Path.Combine(Path.GetTempPath(), $"prior-recipe-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, json);
        return path;
    }

    /// <summary>A 5-fold logistic-regression probe of the diagnosis on the global image embeddings (what <c>medvlp probe</c> uses).</summary>
    private static ClassificationReport Probe(VisionLanguageModel model, IReadOnlyList<SyntheticBrainCase> cases, int[] labels, int seed) =>
        LinearProbe.CrossValidate(model.VolumeEncoder.Embed([.. cases.Select(c => c.Volume)]), labels, DiagnosisClasses, 5, seed).Report;

    private static double ZeroShotAccuracy(VisionLanguageModel model, IReadOnlyList<SyntheticBrainCase> cases)
    {
        var predictions = model.CreateZeroShotClassifier(ObservedLabels()).Classify([.. cases.Select(c => c.Volume)]);
        return cases.Where((c, i) => (int)c.Diagnosis == predictions[i].LabelIndex).Count() / (double)cases.Count;
    }

    private sealed class OneThread : IDisposable
    {
        private readonly int _previous;

        public OneThread(int previous)
        {
            _previous = previous;
            set_num_threads(1);
        }

        public void Dispose() => set_num_threads(_previous);
    }
}
