using MedVlp.Architectures.Colipri;
using MedVlp.Data;
using MedVlp.Modeling;
using MedVlp.Testing;
using MedVlp.Training;
using MedVlp.Volumes;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace MedVlp.Tests.Colipri;

/// <summary>COLIPRI on the shared <see cref="Trainer"/>: the <c>colipri</c> recipe architecture, its synthetic chest CTs and
/// its objective (exact accumulation, no tensor left alive).</summary>
[Collection(nameof(TorchRandomState))] // seeds and trains: kept apart from the tests that check seeded weights
public sealed class ColipriTrainingTests
{
    // 8 training cases (3 and 7 image-only) and 4 held out, preprocessed to the tiny model's 64^3 input.
    private static readonly Lazy<SyntheticTrainingSet> Set = new(() =>
    {
        var recipe = TrainingRecipe.Resolve("colipri-demo");
        var config = recipe.CreateModelConfig(TestModels.Tokenizer.VocabularySize);
        return recipe.Plugin!.CreateSyntheticData(config, recipe.CreatePreprocessing(config), 8, 4, 17)!;
    });

    private static VisionLanguageModel Model(int seed = 5) =>
        TrainingRecipe.Resolve("colipri-demo").CreateModel(TestModels.Tokenizer, seed, trainingReports: Set.Value.TrainReports);

    private static TrainingBatch Batch(VisionLanguageModel model, int[] rows)
    {
        var set = Set.Value;
        var collator = new TrainingBatchCollator(model.Collator, new TextCollation { MaxTokens = model.DualEncoder.MaxTextTokens });
        var volumes = Collator.CollateVolumes([.. rows.Select(r => set.Train[r])], ((IVolumeInputModel)model.Module).ImageInputShape);
        return collator.Collate(volumes, null, [.. rows.Select(r => set.TrainReports[r])], 1, rows);
    }

    [Fact]
    public void TheRecipeMakesChestCtsThePresetAndACorpusDecoder()
    {
        var set = Set.Value;
        Assert.Equal(8, set.Train.Count);
        Assert.Equal([3, 7], Enumerable.Range(0, 8).Where(i => set.TrainReports[i].Length == 0));
        Assert.All(set.Train.Concat(set.HeldOut), v => Assert.Equal(new VolumeShape(64, 64, 64), v.Shape));
        Assert.All(set.HeldOutReports, r => Assert.StartsWith("FINDINGS:", r, StringComparison.Ordinal));
        Assert.Equal(4, set.HeldOutLabels!.Count);
        Assert.All(set.HeldOutLabels, l => Assert.Equal(ColipriChest.Prompts.Select(p => p.Name), l.Keys));

        var recipe = TrainingRecipe.Resolve("colipri-demo");
        var config = (ColipriConfig)recipe.CreateModelConfig(TestModels.Tokenizer.VocabularySize);
        Assert.Equal("colipri-64", recipe.CreatePreprocessing(config).Name);
        Assert.Equal("colipri", TrainingRecipe.Resolve("colipri").CreatePreprocessing(TrainingRecipe.Resolve("colipri").CreateModelConfig(30522)).Name);
        using var model = Model();
        var vocabulary = ((ColipriConfig)model.Config).ReportVocabulary;
        Assert.NotNull(vocabulary);
        Assert.InRange(vocabulary!.Count, 20, 400);
        Assert.IsType<ColipriObjective>(recipe.CreateObjective(model));

        var paper = TrainingRecipe.Resolve("colipri");
        Assert.Equal(("colipri", "full", "colipri"), (paper.Architecture, paper.Size, paper.Objectives[0].Loss));
        var bad = Assert.Throws<RecipeFormatException>(() => (paper with { Objectives = [new ObjectiveSettings { Name = "c", Loss = "clip" }] }).Validate());
        Assert.Contains("available for colipri: colipri", bad.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TheHeldOutEvaluationKeepsNoTrainingVolumeAlive()
    {
        // A caller that has copied the training volumes elsewhere (the demo's prepared tensor) keeps only the held-out
        // part and the evaluation; the training volumes must then be collectable.
        var (evaluation, trainVolume, heldOutVolume) = HeldOutPartOnly();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        Assert.False(trainVolume.IsAlive, "the set's evaluation still references a training volume");
        Assert.True(heldOutVolume.IsAlive, "the evaluation should hold its held-out volumes");
        GC.KeepAlive(evaluation);
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static (Func<VisionLanguageModel, CancellationToken, IReadOnlyDictionary<string, double>>, WeakReference, WeakReference) HeldOutPartOnly()
    {
        var set = ColipriChest.CreateSyntheticSet(ColipriRecipeArchitecture.Preprocessing(16), 3, 1, 5);
        return (set.Evaluate!, new WeakReference(set.Train[0]), new WeakReference(set.HeldOut[0]));
    }

    [Fact]
    public void TheRecipeTrainsThroughTheTrainerWithEveryTermAndEvaluation()
    {
        var set = Set.Value;
        var recipe = TrainingRecipe.Resolve("colipri-demo") with { Steps = 2, EvaluateEvery = 2 };
        using var model = Model();
        using var objective = recipe.CreateObjective(model);
        var shape = ((IVolumeInputModel)model.Module).ImageInputShape;
        using var data = new PreparedTrainingData(set.Train, set.TrainReports, v => Collator.CollateVolumes(v, shape),
            new TrainingBatchCollator(model.Collator, new TextCollation { MaxTokens = recipe.MaxTextTokens(model) }), 4, 1);
        var dir = Directory.CreateTempSubdirectory("colipri-train-").FullName;
        try
        {
            using var trainer = new Trainer(objective, recipe.CreateTrainerOptions(dir));
            var summary = trainer.Fit(data, token => set.Evaluate!(model, token));
            Assert.Equal(2, summary.StepsDone);
            foreach (var term in ColipriObjective.Parts.Append("opposite_sentence_accuracy"))
            {
                Assert.True(summary.LastLosses.ContainsKey(term), $"no {term} in {string.Join(", ", summary.LastLosses.Keys)}");
                Assert.True(double.IsFinite(summary.LastLosses[term]));
            }

            Assert.InRange(summary.LastEvaluation!["val/zero_shot_macro_auroc"], 0, 1);
            Assert.True(summary.LastEvaluation["val/image_embedding_std"] > 0);
            Assert.True(File.Exists(Path.Combine(dir, "metrics.jsonl")));
            Assert.NotEmpty(Directory.GetFiles(Path.Combine(dir, "plots"), "*.png"));

            using var batch = Batch(model, [0, 3, 5]);
            trainer.TrainStep([batch], 1e-3);
            var live = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            trainer.TrainStep([batch], 1e-3);
            Assert.Equal(live, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void APretrainedTextModelLoadsFrozenAndItsProjectionStillTrains()
    {
        // all-MiniLM-L6-v2 (the real ONNX export) as the text encoder: its weights load (checked against ONNX Runtime on
        // loading), the recipe's objective freezes it (requires_grad false, eval in training mode), a training step leaves
        // it byte-identical, and the text projection after it still receives gradients and moves.
        using var text = MedVlp.Backbones.PretrainedBert.Load(TestData.File("minilm/model.onnx"));
        var recipe = TrainingRecipe.Resolve("colipri-demo") with { TextModel = text.Path, Steps = 1 };
        using var model = recipe.CreateModel(text, seed: 5, trainingReports: Set.Value.TrainReports);
        var colipri = (ColipriModel)model.Module;
        Assert.Equal(384, colipri.Sizes.Text.HiddenSize);
        Assert.Equal(6, colipri.Sizes.Text.NumHiddenLayers);
        Assert.NotNull(colipri.Sizes.ReportVocabulary);
        using var objective = recipe.CreateObjective(model);
        Assert.True(colipri.IsFrozen(ColipriModel.TextComponent));
        Assert.All(colipri.TextEncoder.parameters(), p => Assert.False(p.requires_grad));
        colipri.train();
        Assert.False(colipri.TextEncoder.training);
        Assert.DoesNotContain(colipri.TrainableParameters(), p => p.Name.StartsWith("text_encoder.", StringComparison.Ordinal));

        var before = colipri.TextEncoder.named_parameters().ToDictionary(p => p.name, p => p.parameter.data<float>().ToArray());
        var projection = colipri.named_parameters().Single(p => p.name == "text_projection.weight").parameter;
        var projectionBefore = projection.data<float>().ToArray();
        using var trainer = new Trainer(objective, recipe.CreateTrainerOptions(null));
        using var batch = Batch(model, [0, 1, 2, 4]);
        trainer.TrainStep([batch], 1e-3);
        foreach (var (name, p) in colipri.TextEncoder.named_parameters())
        {
            Assert.Equal(before[name], p.data<float>().ToArray());
        }

        Assert.NotEqual(projectionBefore, projection.data<float>().ToArray());

        // The frozen encoder ran once per distinct text (the batch's reports and the opposite sentences): encoding again
        // reads the cache, and equals the encoder run afresh.
        Assert.True(colipri.CacheFrozenTextOutputs);
        var cached = colipri.CachedTextOutputs;
        Assert.True(cached >= 4 + (2 * ColipriChest.Findings.Count), $"{cached} cached texts");
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var again = colipri.EncodeText(batch.TextIds!, batch.TextMask!);
        Assert.Equal(cached, colipri.CachedTextOutputs);
        colipri.CacheFrozenTextOutputs = false;
        var fresh = colipri.EncodeText(batch.TextIds!, batch.TextMask!);
        Assert.True(again.allclose(fresh, rtol: 0, atol: 1e-6), $"cached vs fresh: {(again - fresh).abs().max().item<float>()}");
    }

    [Fact]
    public void TwoMicroBatchesGiveTheUpdateOfOneBatch()
    {
        // Plain SGD (lr 1) moves each parameter by its gradient: the whole batch and two halves must agree for the contrastive
        // (negatives across both halves), report and opposite-sentence terms. Masked image modelling draws its masks per
        // micro-batch, so it is left out here; that a micro-batch keeps its masks when encoded again is checked below.
        var sgd = new TrainerOptions { Optimizer = new OptimizerSettings { Type = "sgd", LearningRate = 1, Momentum = 0, WeightDecay = 0 }, GradientClipNorm = 0, Steps = 1 };
        var after = new List<Dictionary<string, Tensor>>();
        foreach (var micro in new[] { 1, 2 })
        {
            using var model = Model();
            using var objective = new ColipriObjective(model, ColipriChest.Findings);
            objective.SetLossWeight("masked_image", 0);
            using var trainer = new Trainer(objective, sgd);
            using var batch = Batch(model, [0, 1]);
            using var first = batch.Slice(0, 1);
            using var second = batch.Slice(1, 1);
            random.manual_seed(9);
            var losses = trainer.TrainStep(micro == 1 ? [batch] : [first, second], 1.0);
            Assert.False(losses.ContainsKey("masked_image"));
            Assert.True(losses["contrastive"] > 0 && losses["report"] > 0 && losses["opposite_sentence"] > 0);
            after.Add(TrainableSnapshots.Take(model.Module));
        }

        TrainableSnapshots.AssertSameAndDispose(after[0], after[1], 2e-5);
    }

    [Fact]
    public void AMicroBatchKeepsItsMasksWhenEncodedAgain()
    {
        using var model = Model();
        using var objective = new ColipriObjective(model, ColipriChest.Findings);
        using var batch = Batch(model, [0, 3]);
        using var other = Batch(model, [0, 3]);
        using var scope = NewDisposeScope();
        random.manual_seed(4);
        using var first = objective.Encode(batch);
        using var again = objective.Encode(batch);
        using var fresh = objective.Encode(other);
        Assert.True(first["mim_sum"].allclose(again["mim_sum"], 0, 0), "the same micro-batch must be masked the same way twice");
        Assert.False(first["mim_sum"].allclose(fresh["mim_sum"], 0, 0), "another batch draws its own masks");
        // Row 1 (case 3) is image-only: no report embedding, no language-modelling tokens, but masked patches.
        Assert.True(first["text"][0].abs().sum().item<float>() > 0);
        Assert.Equal(0f, first["text"][1].abs().sum().item<float>());
        Assert.Equal(0f, first["lm_count"][1].item<float>());
        Assert.True(first["mim_count"][1].item<float>() > 0);
    }
}
