using MedVlp.Modeling.Backbones;
using MedVlp.Modeling.Blocks;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace MedVlp.Tests.Blocks;

/// <summary>Each block against a PyTorch module written after the reference code (tests/golden/make_blocks_golden.py): outputs and gradients to 1e-5.</summary>
public sealed class BlocksParityTests(ITestOutputHelper output)
{
    [Fact]
    public void EvaAttentionMatchesLavis()
    {
        using var attention = new Attention(new AttentionOptions { Width = 16, Heads = 2, QkvBias = QkvBias.QueryValue });
        Report("eva_attn", BlocksGolden.Check("eva_attn", attention, i => (attention.forward(i["x"]), null)));
    }

    [Fact]
    public void FusedQkvAttentionMatchesTimm()
    {
        using var attention = new Attention(new AttentionOptions { Width = 16, Heads = 2, QkvBias = QkvBias.Fused });
        Report("timm_attn", BlocksGolden.Check("timm_attn", attention, i => (attention.forward(i["x"]), null)));
    }

    [Fact]
    public void PreNormLayerWithLayerScaleMatchesLavisEvaBlock()
    {
        using var layer = new TransformerLayer(new TransformerLayerOptions { Width = 16, Heads = 2, MlpHidden = 24, QkvBias = QkvBias.QueryValue, LayerScaleInit = 0.5 });
        Report("eva_block", BlocksGolden.Check("eva_block", layer, i => (layer.forward(i["x"]), null)));
    }

    [Fact]
    public void RotaryAttentionMatchesEva02Style3dRope()
    {
        using var attention = new Attention(new AttentionOptions { Width = 24, Heads = 2, QkvBias = QkvBias.QueryValue });
        using var tables = new RotaryEmbedding(12, 3).Tables([2, 3, 2], prefixTokens: 1);
        Report("rope_attn", BlocksGolden.Check("rope_attn", attention, i => (attention.forward(i["x"], null, tables), null)));
    }

    [Fact]
    public void RotaryTablesMatchEva02Style3dRope()
    {
        using var tables = new RotaryEmbedding(12, 3).Tables([2, 3, 2]);
        using var empty = new EmptyModule();
        Report("rope_apply", BlocksGolden.Check("rope_apply", empty, i => (tables.Apply(i["q"]), null)));
    }

    [Fact]
    public void SwiGluMatchesTimm()
    {
        using var mlp = new SwiGluMlp(16, 24, hiddenNorm: true);
        Report("swiglu", BlocksGolden.Check("swiglu", mlp, i => (mlp.forward(i["x"]), null)));
    }

    [Fact]
    public void PostNormLayerMatchesReference()
    {
        using var layer = new TransformerLayer(new TransformerLayerOptions { Width = 16, Heads = 2, MlpHidden = 24, NormFirst = false });
        Report("post_norm", BlocksGolden.Check("post_norm", layer, i => (layer.forward(i["x"]), null)));
    }

    [Fact]
    public void BertLayerWithPaddingMatchesHuggingFace()
    {
        using var layer = new BertLayer(Options());
        Report("bert_layer", BlocksGolden.Check("bert_layer", layer, i => (layer.forward(i["x"], AttentionMask.Padding(i["mask"])), null)));
    }

    [Fact]
    public void QFormerLayerMatchesLavis()
    {
        using var layer = new BertLayer(Options() with { CrossAttentionWidth = 24, QueryFeedForward = true });
        Report("qformer_layer", BlocksGolden.Check("qformer_layer", layer, i =>
        {
            var textMask = i["text_mask"];
            var selfMask = AttentionMask.And(
                AttentionMask.PrefixCausal(9, 4),
                AttentionMask.Padding(cat([ones(2, 4, ScalarType.Int64), textMask], 1)));
            return (layer.forward(i["x"], selfMask, i["encoder"], AttentionMask.Padding(i["image_mask"]), queryLength: 4), null);
        }));
    }

    [Fact]
    public void BertEmbeddingsWithTokenTypesAndOffsetMatchHuggingFace()
    {
        using var embeddings = new BertEmbeddings(new BertEmbeddingsOptions { VocabSize = 30, HiddenSize = 16, MaxPositionEmbeddings = 20, TypeVocabSize = 2, HiddenDropout = 0 });
        Report("bert_embed", BlocksGolden.Check("bert_embed", embeddings, i => (embeddings.forward(i["ids"], null, i["types"], positionOffset: 3), null)));
    }

    [Fact]
    public void QFormerEmbeddingsWithQueriesMatchLavis()
    {
        using var embeddings = new BertEmbeddings(new BertEmbeddingsOptions { VocabSize = 30, HiddenSize = 16, MaxPositionEmbeddings = 20, TypeVocabSize = 0, HiddenDropout = 0 });
        Report("qformer_embed", BlocksGolden.Check("qformer_embed", embeddings, i => (embeddings.forward(i["ids"], null, queryEmbeds: i["query"]), null)));
    }

    [Fact]
    public void ClipAttentionPoolMatchesOpenAiClip()
    {
        using var pool = new ClipAttentionPool(16, 2, tokens: 9, outputWidth: 12);
        Report("clip_pool", BlocksGolden.Check("clip_pool", pool, i => (pool.ForwardFeatureMap(i["x"]), null)));
    }

    [Fact]
    public void Gpt2BlockMatchesHuggingFace()
    {
        using var block = new Gpt2Block(new Gpt2BlockOptions { Width = 16, Heads = 2, Inner = 64 });
        Report("gpt2_block", BlocksGolden.Check("gpt2_block", block, i => (block.forward(i["x"]), null)));
    }

    [Fact]
    public void Gpt2LanguageModelLogitsLossAndGradientsMatchHuggingFace()
    {
        using var model = new Gpt2LMHeadModel(TinyGpt2());
        Report("gpt2_lm", BlocksGolden.Check("gpt2_lm", model, i =>
        {
            var result = model.Compute(i["ids"], null, i["mask"], i["labels"]);
            return (result.Logits, result.Loss);
        }));
    }

    [Fact]
    public void CrossAttentionFromWiderContextMatchesTorchMultiHeadAttention()
    {
        using var attention = new CrossAttention(16, 2, contextWidth: 24);
        Report("cross_attn", BlocksGolden.Check("cross_attn", attention, i => (attention.forward(i["x"], i["context"], AttentionMask.Padding(i["context_mask"])), null)));
    }

    [Theory]
    [InlineData("pos_interp_3d", new long[] { 2, 3, 2 }, new long[] { 3, 4, 4 })]
    [InlineData("pos_interp_2d", new long[] { 3, 3 }, new long[] { 5, 4 })]
    public void InterpolatedPositionsMatchTimmResampling(string name, long[] from, long[] to)
    {
        using var empty = new EmptyModule();
        Report(name, BlocksGolden.Check(name, empty, i => (PositionEmbedding.Interpolate(i["pos"], from, to), null)));
    }

    internal static BertLayerOptions Options() => new() { HiddenSize = 16, Heads = 2, IntermediateSize = 32, HiddenDropout = 0, AttentionDropout = 0 };

    internal static Gpt2Config TinyGpt2() => new() { VocabSize = 40, NPositions = 16, NEmbd = 16, NLayer = 2, NHead = 2, EmbdPdrop = 0, ResidPdrop = 0, AttnPdrop = 0 };

    private void Report(string name, double worst) => output.WriteLine($"{name}: largest absolute difference {worst:E2} (outputs and gradients)");

    private sealed class EmptyModule() : nn.Module("empty");
}
