using System.Text.Json;
using MedVlp.Architectures.Colipri;
using MedVlp.Losses;
using MedVlp.Modeling;
using MedVlp.Modeling.Backbones;
using MedVlp.Modeling.Blocks;
using MedVlp.Testing;
using MedVlp.Tests.Blocks;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace MedVlp.Tests.Colipri;

/// <summary>COLIPRI's parts against PyTorch modules written after timm / Primus (tests/golden/make_colipri_golden.py).</summary>
[Collection(nameof(TorchRandomState))] // creates randomly initialised modules: libtorch's global generator is shared
public sealed class ColipriParityTests
{
    private const string File = "colipri_golden.safetensors";

    private static readonly PrimusEncoderOptions TinyPrimus = new()
    {
        InChannels = 1, PatchSize = 4, InputSize = 16, Width = 24, Depth = 2, Heads = 2, MlpRatio = 8.0 / 3,
    };

    [Fact]
    public void EvaBlockWithRotaryEqualsTimm()
    {
        BlocksGolden.Use(File);
        using var block = new EvaBlock(new EvaBlockOptions { Width = 24, Heads = 2, MlpHidden = 64 });
        using var tables = new RotaryEmbedding(12, 3).Tables([2, 3, 4]);
        var worst = BlocksGolden.Check("eva_block", block, i => (block.forward(i["x"], null, tables), null));
        Assert.True(worst < 1e-4);
    }

    [Fact]
    public void PrimusEncoderWithConvolutionalStemEqualsReference()
    {
        BlocksGolden.Use(File);
        using var encoder = new PrimusEncoder(TinyPrimus with { PatchSize = 8, InputSize = 32, StemChannels = [3, 5] });
        Assert.Equal(2, encoder.Options.EmbeddingPatchSize);
        Assert.Contains(encoder.named_parameters(), p => p.name == "stem.2.weight");
        // The first stem convolution's weight gradient sums 16^3 x 2 products per entry: float32 rounding reaches ~2e-5
        // relative there, so this case runs in float64 (the golden values are the float64 reference's).
        encoder.to(ScalarType.Float64);
        var worst = BlocksGolden.Check("primus_stem", encoder, i => (encoder.forward(i["volumes"].to(ScalarType.Float64)), null));
        Assert.True(worst < 1e-4);
        Assert.Throws<ArgumentException>(() => new PrimusEncoder(TinyPrimus with { PatchSize = 4, StemChannels = [3, 5, 7] }));
        var tiny = ColipriConfig.Tiny(64);
        var huge = Assert.Throws<ArgumentException>(() => (tiny with { Encoder = tiny.Encoder with { StemChannels = [16, 1 << 20] } }).Validate());
        Assert.Contains("encoder.stem_channels", huge.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void PrimusStemWithBatchNormEqualsReferenceInTrainingAndEvaluationMode()
    {
        BlocksGolden.Use(File);
        using var scope = NewDisposeScope();
        using var encoder = new PrimusEncoder(TinyPrimus with { PatchSize = 8, InputSize = 32, StemChannels = [3, 5], StemBatchNorm = true });
        encoder.to(ScalarType.Float64);
        var parameters = encoder.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var buffers = encoder.named_buffers().ToDictionary(b => b.name, b => b.buffer);
        Assert.Contains("stem.3.weight", parameters.Keys);
        string[] running = ["stem.1.running_mean", "stem.1.running_var", "stem.4.running_mean", "stem.4.running_var"];
        Assert.All(running, key => Assert.Contains(key, buffers.Keys));
        using (no_grad())
        {
            foreach (var (key, p) in parameters)
            {
                p.copy_(BlocksGolden.Get("primus_stem_bn/param/" + key));
            }

            foreach (var key in running)
            {
                buffers[key].copy_(BlocksGolden.Get("primus_stem_bn/running_before/" + key));
            }
        }

        // Training mode: batch statistics, and the running ones move (momentum 0.1, unbiased variance).
        encoder.train();
        var volumes = BlocksGolden.Get("primus_stem_bn/input/volumes").to(ScalarType.Float64).requires_grad_(true);
        var output = encoder.forward(volumes);
        BlocksGolden.AssertClose(BlocksGolden.Get("primus_stem_bn/output"), output, "training-mode output");
        (output * BlocksGolden.Get("primus_stem_bn/probe")).sum().backward();
        foreach (var (key, p) in parameters.Where(p => p.Key != "mask_token"))
        {
            BlocksGolden.AssertClose(BlocksGolden.Get("primus_stem_bn/grad/" + key), p.grad!, "grad " + key);
        }

        BlocksGolden.AssertClose(BlocksGolden.Get("primus_stem_bn/grad_input/volumes"), volumes.grad!, "grad input");
        foreach (var key in running)
        {
            BlocksGolden.AssertClose(BlocksGolden.Get("primus_stem_bn/running_after/" + key), buffers[key], key);
        }

        // Evaluation mode: the running statistics, which a single batch's output must not depend on.
        encoder.eval();
        using (no_grad())
        {
            var evaluated = encoder.forward(volumes.detach());
            BlocksGolden.AssertClose(BlocksGolden.Get("primus_stem_bn/eval_output"), evaluated, "evaluation-mode output");
            Assert.True((evaluated - output.detach()).abs().max().ToDouble() > 1e-3, "evaluation mode gave the training-mode output");
            BlocksGolden.AssertClose(evaluated[1..2], encoder.forward(volumes.detach()[1..2]), "evaluation-mode output of one volume alone");
        }
    }

    [Fact]
    public void PrimusEncoderEqualsReferenceWithAndWithoutMask()
    {
        BlocksGolden.Use(File);
        using var encoder = new PrimusEncoder(TinyPrimus);
        Assert.Equal(64, encoder.Options.MlpHidden);
        BlocksGolden.Check("primus", encoder, i => (encoder.forward(i["volumes"]), null));
        // The mask token's gradient sums the contributions of every masked token of the batch; in float32 that sum
        // carries ~1e-4 relative rounding, so this case runs in float64 (the float32 path is checked just above).
        using var masked = new PrimusEncoder(TinyPrimus);
        masked.to(ScalarType.Float64);
        BlocksGolden.Check("primus_masked", masked, i => (masked.forward(i["volumes"].to(ScalarType.Float64), i["mask"]), null));
    }

    [Fact]
    public void ImageTowerEqualsReference()
    {
        BlocksGolden.Use(File);
        using var model = new ColipriModel(TinyConfig());
        BlocksGolden.Check(
            "colipri_image",
            model,
            i => (model.EncodeImage(i["volumes"]), null),
            name => name.StartsWith("backbone.", StringComparison.Ordinal) || name.StartsWith("projector.", StringComparison.Ordinal) || name.StartsWith("pooler.", StringComparison.Ordinal));
    }

    [Fact]
    public void ReportDecoderEqualsReference()
    {
        BlocksGolden.Use(File);
        using var decoder = new ReportDecoder(50, 16, 2, 1, 16, 16);
        BlocksGolden.Check("report_decoder", decoder, i => (decoder.forward(i["input_ids"], i["attention_mask"], i["image_tokens"]), null));
    }

    [Fact]
    public void LossesEqualTheirFormulas()
    {
        var golden = JsonDocument.Parse(System.IO.File.ReadAllText(TestData.Golden("colipri_losses.json"))).RootElement;
        using var scope = NewDisposeScope();

        var o = golden.GetProperty("opposite");
        var image = Tensor(o.GetProperty("image")).requires_grad_(true);
        var sentences = Tensor(o.GetProperty("sentences")).requires_grad_(true);
        var labels = Tensor(o.GetProperty("labels")).to(ScalarType.Int64);
        using (var output = new OppositeSentenceLoss().forward(new OppositeSentenceInput(image, sentences, labels, tensor(o.GetProperty("scale").GetDouble()))))
        {
            Assert.Equal(o.GetProperty("value").GetDouble(), output.Total.ToDouble(), 9);
            output.Total.backward();
        }

        BlocksGolden.AssertClose(Tensor(o.GetProperty("grad_image")), image.grad!, "opposite grad image");
        BlocksGolden.AssertClose(Tensor(o.GetProperty("grad_sentences")), sentences.grad!, "opposite grad sentences");

        foreach (var (key, normalize) in new[] { ("mim", false), ("mim_norm", true) })
        {
            var m = golden.GetProperty(key);
            var prediction = Tensor(m.GetProperty("prediction")).requires_grad_(true);
            var loss = new MaskedPatchReconstructionLoss(new MaskedPatchReconstructionOptions { NormalizeTargetPatches = normalize });
            using var output = loss.forward(new MaskedPatchInput(prediction, Tensor(m.GetProperty("target")), Tensor(m.GetProperty("mask")).to(ScalarType.Bool)));
            Assert.Equal(m.GetProperty("value").GetDouble(), output.Total.ToDouble(), 9);
            output.Total.backward();
            BlocksGolden.AssertClose(Tensor(m.GetProperty("grad")), prediction.grad!, key + " grad");
        }

        var l = golden.GetProperty("lm");
        var logits = Tensor(l.GetProperty("logits")).requires_grad_(true);
        using (var output = new CausalLanguageModelingLoss().forward(new LanguageModelingInput(logits, Tensor(l.GetProperty("labels")).to(ScalarType.Int64))))
        {
            Assert.Equal(l.GetProperty("value").GetDouble(), output.Total.ToDouble(), 9);
            output.Total.backward();
        }

        BlocksGolden.AssertClose(Tensor(l.GetProperty("grad")), logits.grad!, "lm grad");
    }

    [Fact]
    public void FullSizeKeysFollowPrimusOnTheMetaDevice()
    {
        using var model = new ColipriModel(ColipriConfig.Full(30522), torch.META);
        var keys = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.shape);
        Assert.Equal([864, 1, 8, 8, 8], keys["backbone.down_projection.proj.weight"]);
        Assert.Equal([864, 864], keys["backbone.eva.blocks.15.attn.q_proj.weight"]);
        Assert.False(keys.ContainsKey("backbone.eva.blocks.15.attn.k_proj.bias"));
        Assert.Equal([2304, 864], keys["backbone.eva.blocks.15.mlp.fc1_g.weight"]);
        Assert.Equal([2304], keys["backbone.eva.blocks.15.mlp.norm.weight"]);
        Assert.Equal([864], keys["backbone.eva.blocks.0.gamma_1"]);
        Assert.False(keys.ContainsKey("backbone.eva.blocks.16.norm1.weight"));
        Assert.False(keys.ContainsKey("backbone.eva.pos_embed"));
        Assert.Equal([768, 864, 1, 1, 1], keys["projector.weight"]);
        Assert.Equal([1, 1, 768], keys["pooler.latent"]);
        var backbone = keys.Where(k => k.Key.StartsWith("backbone.", StringComparison.Ordinal)).Sum(k => k.Value.Aggregate(1L, (a, b) => a * b));
        Assert.InRange(backbone, 140_000_000, 146_000_000); // Primus-M: 16 blocks of about 8.96 M parameters
    }

    [Fact]
    public void RotaryAttentionScoresDependOnlyOnRelativePosition()
    {
        // Shift the whole token content by one grid step: with rotary positions and no absolute embedding, the
        // attention pattern between the same contents is unchanged (translation equivariance of the scores).
        using var scope = NewDisposeScope();
        var rope = new RotaryEmbedding(12, 3);
        using var tables = rope.Tables([1, 1, 6]);
        var q = randn(1, 1, 6, 12);
        var k = randn(1, 1, 6, 12);
        var scores = tables.Apply(q).matmul(tables.Apply(k).transpose(-2, -1));
        var shiftedQ = zeros(1, 1, 6, 12);
        var shiftedK = zeros(1, 1, 6, 12);
        shiftedQ.narrow(2, 1, 5).copy_(q.narrow(2, 0, 5));
        shiftedK.narrow(2, 1, 5).copy_(k.narrow(2, 0, 5));
        var shifted = tables.Apply(shiftedQ).matmul(tables.Apply(shiftedK).transpose(-2, -1));
        var a = scores.narrow(2, 0, 5).narrow(3, 0, 5);
        var b = shifted.narrow(2, 1, 5).narrow(3, 1, 5);
        Assert.True(a.allclose(b, 1e-5, 1e-5), "scores changed under a common shift");
    }

    internal static ColipriConfig TinyConfig() => new()
    {
        Encoder = TinyPrimus,
        Text = new BertConfig { VocabSize = 50, HiddenSize = 16, NumHiddenLayers = 1, NumAttentionHeads = 2, IntermediateSize = 32, MaxPositionEmbeddings = 16, HiddenDropoutProb = 0, AttentionProbsDropoutProb = 0, AddPoolingLayer = false },
        EmbeddingDim = 16,
        PoolHeads = 2,
        MaxTextTokens = 16,
        DecoderLayers = 1,
        DecoderWidth = 16,
        DecoderHeads = 2,
    };

    private static Tensor Tensor(JsonElement e)
    {
        var shape = new List<long>();
        var cursor = e;
        while (cursor.ValueKind == JsonValueKind.Array)
        {
            shape.Add(cursor.GetArrayLength());
            cursor = cursor[0];
        }

        var values = new List<double>();
        void Walk(JsonElement x)
        {
            if (x.ValueKind == JsonValueKind.Array)
            {
                foreach (var y in x.EnumerateArray())
                {
                    Walk(y);
                }
            }
            else
            {
                values.Add(x.ValueKind is JsonValueKind.True ? 1 : x.ValueKind is JsonValueKind.False ? 0 : x.GetDouble());
            }
        }

        Walk(e);
        return tensor(values.ToArray(), [.. shape], ScalarType.Float64);
    }
}
