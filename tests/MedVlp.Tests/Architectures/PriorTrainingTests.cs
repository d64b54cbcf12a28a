using System.Diagnostics;
using MedVlp.Architectures.Prior;
using MedVlp.Data;
using MedVlp.Evaluation;
using MedVlp.Synthetic;
using MedVlp.Testing;
using MedVlp.Text;
using MedVlp.Training;
using MedVlp.Volumes;
using MedVlp.Volumes.Transforms;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace MedVlp.Tests.Architectures;

/// <summary>
/// PRIOR's three-stage recipe through the <see cref="Trainer"/> on synthetic brain MRIs (the middle axial slice of each,
/// 64 x 64) with their reports: the trained image encoder beats its own random initialisation on a cross-validated linear
/// probe of the diagnosis on held-out cases; the stages switch the computation (terms) as released.
/// </summary>
[Collection(nameof(TorchRandomState))]
public sealed class PriorTrainingTests(ITestOutputHelper output)
{
    private const int Seed = 11;

    /// <summary>Min-max to [0, 1], then centred crop or pad to 64^3.</summary>
    private static readonly TransformPipeline Preprocessing = new(
    [
        new MinMaxNormalize { OutputMin = 0, OutputMax = 1 },
        new CropOrPad { Size = new VolumeShape(64, 64, 64), FillValue = 0 },
    ], "prior-test");

    [Fact]
    public void TheTinyRecipeBeatsRandomInitialisationOnALinearProbe()
    {
        var tokenizer = WordPieceTextTokenizer.FromVocabularyFile(TestData.File("bert/vocab.txt"));
        var train = SyntheticBrainDataset.Generate(48, Seed);
        var probe = SyntheticBrainDataset.Generate(60, Seed, firstIndex: 1000);
        var config = PriorConfig.Tiny(tokenizer.VocabularySize) with
        {
            Text = PriorConfig.Tiny().Text with { VocabSize = tokenizer.VocabularySize, MaxPositionEmbeddings = 160 },
            MaxTextTokens = 160,
        };
        random.manual_seed(Seed);
        using var model = new PriorModel(config);
        using var objective = new PriorObjective(model, tokenizer);
        var labels = probe.Select(c => (int)c.Diagnosis).ToArray();
        var classes = CognitiveDiagnosisNames.All.Select(d => d.ToString()).ToArray();
        var before = Probe(model, objective, probe, labels, classes);

        var clock = Stopwatch.StartNew();
        using var data = new PreparedTrainingData([.. train.Select(c => c.Volume)], [.. train.Select(c => c.Report)], Prepare,
            new TrainingBatchCollator(tokenizer, config.MaxTextTokens), batchSize: 8, seed: Seed);
        using var trainer = new Trainer(objective, PriorRecipe.Options(PriorRecipeSize.Tiny, Seed, tinySteps: 30));
        var summary = trainer.Fit(data);
        var seconds = clock.Elapsed.TotalSeconds;
        var stages = summary.History.GroupBy(h => h.Stage).ToDictionary(g => g.Key, g => g.Last().Losses);
        Assert.Equal(["stage1", "stage2", "stage3"], stages.Keys.Order(StringComparer.Ordinal));
        Assert.DoesNotContain("proto", stages["stage1"].Keys);
        Assert.Contains("proto", stages["stage2"].Keys);
        Assert.DoesNotContain("rec_image", stages["stage2"].Keys);
        Assert.All(PriorLossWeights.Names, n => Assert.Contains(n, stages["stage3"].Keys));

        var after = Probe(model, objective, probe, labels, classes);
        output.WriteLine($"90 steps in {seconds:F0} s; first loss {summary.History[0].Losses["total"]:F3}, stage 3 last {stages["stage3"]["total"]:F3}");
        output.WriteLine($"linear probe (5-fold, 60 held-out cases, 3 diagnoses): accuracy {before.Accuracy:F3} -> {after.Accuracy:F3}, macro AUROC {before.MacroAuroc:F3} -> {after.MacroAuroc:F3}");
        // Measured (seed 11): macro AUROC 0.629 -> 0.688, accuracy 0.500 -> 0.500; the test asks for +0.03 AUROC.
        Assert.True(after.MacroAuroc >= before.MacroAuroc + 0.03, $"macro AUROC {before.MacroAuroc:F3} -> {after.MacroAuroc:F3}: training must add at least 0.03");
    }

    private static Tensor Prepare(IReadOnlyList<Volume> volumes) =>
        Collator.CollateVolumes([.. volumes.Select(v => Preprocessing.Apply(v))], [1, 64, 64, 64]);

    /// <summary>A 5-fold logistic-regression probe of the diagnosis on the pooled ResNet features (eval mode).</summary>
    private static ClassificationReport Probe(PriorModel model, PriorObjective objective, IReadOnlyList<SyntheticBrainCase> cases, int[] labels, string[] classes)
    {
        model.eval();
        var features = new List<float[]>();
        using (no_grad())
        {
            for (var i = 0; i < cases.Count; i += 10)
            {
                using var scope = NewDisposeScope();
                var volumes = Prepare([.. cases.Skip(i).Take(10).Select(c => c.Volume)]);
                var pooled = model.ImageBackbone.Features(objective.ModelInput(volumes)).Pooled.to(ScalarType.Float32);
                for (var r = 0; r < pooled.shape[0]; r++)
                {
                    features.Add(pooled[r].data<float>().ToArray());
                }
            }
        }

        model.train();
        return LinearProbe.CrossValidate(features, labels, classes, 5, Seed).Report;
    }
}
