using MedVlp.Architectures.Colipri;
using MedVlp.Synthetic;
using MedVlp.Text;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

namespace MedVlp.Tests.Colipri;

[Collection(nameof(TorchRandomState))] // creates randomly initialised modules: libtorch's global generator is shared
public sealed class ColipriObjectiveTests
{
    private static readonly FindingDefinition[] Findings =
    [
        new("pleural_effusion", ["effusion"], "There is a pleural effusion.", "There is no pleural effusion."),
        new("cardiomegaly", ["cardiomegaly", "heart", "cardiac"], "The heart is enlarged.", "The heart is not enlarged."),
    ];

    [Fact]
    public void LabelerReadsAffirmedNegatedAndMissingFindings()
    {
        var labeler = new ReportFindingLabeler(Findings);
        Assert.Equal([1L, 0L], labeler.Label("FINDINGS: There is a left pleural effusion. Heart size is normal. IMPRESSION: Pleural effusion."));
        Assert.Equal([0L, 1L], labeler.Label("No pleural effusion. The cardiac silhouette is enlarged."));
        Assert.Equal([-1L, -1L], labeler.Label("The lungs are clear."));
        Assert.Equal([0L, -1L], labeler.Label("Negative for effusion."));
    }

    [Fact]
    public void OneStepTrainsEveryTowerAndLeavesNoTensor()
    {
        var tokenizer = TestModels.Tokenizer;
        var config = ColipriParityTests.TinyConfig() with { Text = ColipriParityTests.TinyConfig().Text with { VocabSize = tokenizer.VocabularySize, MaxPositionEmbeddings = 64 }, MaxTextTokens = 64 };
        random.manual_seed(1);
        using var model = new ColipriModel(config);
        using var objective = new ColipriObjective(model, tokenizer, Findings);
        using var optimizer = optim.AdamW(model.parameters(), lr: 1e-3);
        var before = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
        var reports = new[] { "There is a pleural effusion.", "No pleural effusion. The heart is enlarged.", "The lungs are clear.", "Heart size is normal." };
        var labeler = new ReportFindingLabeler(Findings);

        void Step()
        {
            using var scope = NewDisposeScope();
            var encoded = tokenizer.EncodeBatch(reports, 64);
            var batch = new ColipriBatch(
                randn([4, 1, 16, 16, 16]),
                tensor(encoded.Ids.ToArray(), [4, encoded.SequenceLength]),
                tensor(encoded.AttentionMask.ToArray(), [4, encoded.SequenceLength]),
                tensor(new[] { true, true, true, false }),
                tensor(reports.SelectMany(labeler.Label).ToArray(), [4, 2]));
            optimizer.zero_grad();
            using var output = objective.Compute(batch);
            Assert.Equal(["contrastive", "report", "masked_image", "opposite_sentence", "opposite_sentence_accuracy"], output.Terms.Keys.ToArray());
            output.Total.backward();
            optimizer.step();
        }

        Step();
        foreach (var prefix in new[] { "backbone.down_projection", "backbone.eva.blocks.0.attn.q_proj", "backbone.mask_token", "projector", "pooler", "text_encoder", "text_projection", "logit_scale", "report_decoder", "mim_head" })
        {
            var changed = model.named_parameters().Where(p => p.name.StartsWith(prefix, StringComparison.Ordinal))
                .Any(p => !p.parameter.detach().allclose(before[p.name], 0, 0));
            Assert.True(changed, $"{prefix} did not change in a training step");
        }

        Assert.True(model.LogitBias.detach().allclose(before["logit_bias"], 0, 0), "CLIP's logit bias must stay fixed");
        var live = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        Step();
        Step();
        Assert.Equal(live, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    [Fact]
    public void MaskedImageModellingAloneLowersTheReconstructionLoss()
    {
        random.manual_seed(3);
        var options = new SyntheticChestOptions { InPlaneSpacingMm = (6, 6), SliceSpacingMm = (6, 6), LengthMm = 120, FieldOfViewMm = 384 };
        var inputs = SyntheticChestDataset.Generate(6, 5, options).Select(c => ToInput(c.Volume)).ToArray();
        using var model = new ColipriModel(ColipriParityTests.TinyConfig() with { Encoder = ColipriParityTests.TinyConfig().Encoder with { InputSize = 32, PatchSize = 8, Width = 24 } });
        using var loss = new MedVlp.Losses.MaskedPatchReconstructionLoss();
        using var optimizer = optim.AdamW(model.parameters(), lr: 3e-3);
        var generator = new Generator(7);
        double Loss(bool train)
        {
            using var scope = NewDisposeScope();
            var (prediction, target, mask) = model.MaskedImageModeling(stack(inputs), generator);
            using var output = loss.forward(new MedVlp.Losses.MaskedPatchInput(prediction, target, mask));
            if (train)
            {
                optimizer.zero_grad();
                output.Total.backward();
                optimizer.step();
            }

            return output.Total.ToDouble();
        }

        var first = Enumerable.Range(0, 3).Average(_ => Loss(false));
        for (var i = 0; i < 40; i++)
        {
            Loss(true);
        }

        var last = Enumerable.Range(0, 3).Average(_ => Loss(false));
        Assert.True(last < 0.6 * first, $"masked reconstruction loss went from {first:F4} to {last:F4}");
    }

    [Fact]
    public void SlidingWindowOverOneCropEqualsPlainEncoding()
    {
        random.manual_seed(5);
        using var model = new ColipriModel(ColipriParityTests.TinyConfig());
        model.eval();
        using var scope = NewDisposeScope();
        var volume = randn([1, 1, 16, 16, 16]);
        var plain = model.EncodeImage(volume);
        var windowed = model.EncodeImageSlidingWindow(volume, 8);
        Assert.True(plain.allclose(windowed, 1e-5, 1e-5));

        var large = randn([1, 1, 24, 16, 32]);
        var embedding = model.EncodeImageSlidingWindow(large, 8);
        Assert.Equal([1L, 16L], embedding.shape);
        Assert.Equal(1.0, embedding.norm().ToDouble(), 5);
        var ex = Assert.Throws<ArgumentException>(() => model.EncodeImageSlidingWindow(large, 6));
        Assert.Contains("multiple of 4", ex.Message, StringComparison.Ordinal);
    }

    private static Tensor ToInput(MedVlp.Volumes.Volume v)
    {
        var pipeline = new MedVlp.Volumes.Transforms.TransformPipeline(
        [
            new MedVlp.Volumes.Transforms.Reorient("SAR"),
            new MedVlp.Volumes.Transforms.Clamp(-1000, 1000),
            new MedVlp.Volumes.Transforms.ScaleIntensityRange { InputMin = -1000, InputMax = 1000, OutputMin = -1, OutputMax = 1 },
            new MedVlp.Volumes.Transforms.CropOrPad { Size = new MedVlp.Volumes.VolumeShape(32, 32, 32), FillValue = -1 },
        ], "mim-test");
        var x = pipeline.Apply(v);
        return tensor(x.GetFrame(0).ToArray(), [1, 32, 32, 32]).DetachFromDisposeScope();
    }
}
