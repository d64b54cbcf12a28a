using System.Text.Json;
using MedVlp.Modeling;
using MedVlp.Modeling.Backbones;
using MedVlp.Modeling.Blocks;
using MedVlp.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Tests.Blocks;

/// <summary>
/// Full-size backbones built on the <c>meta</c> device (no memory) against the parameter names, shapes and counts of the
/// reference modules (tests/golden/data/blocks_keys.json, from make_blocks_golden.py), and their no-weight-decay sets.
/// </summary>
public sealed class FullSizeKeyTests
{
    private static readonly Device Meta = new(DeviceType.META);

    [Fact]
    public void EvaViTgHasLavisNamesShapesAndCount()
    {
        using var model = new EvaVisionTransformer(EvaVitConfig.ViTg, Meta);
        AssertKeys("eva_vit_g", model);
        Assert.Equal(6144, (int)(1408 * EvaVitConfig.ViTg.MlpRatio));
    }

    [Fact]
    public void QFormerHasLavisNamesShapesAndCount()
    {
        using var model = new QFormer(QFormerConfig.Blip2, Meta);
        AssertKeys("qformer_blip2", model);
        var keys = model.named_parameters().Select(p => p.name).ToHashSet();
        Assert.Contains("bert.encoder.layer.10.crossattention.self.key.weight", keys);
        Assert.DoesNotContain("bert.encoder.layer.11.crossattention.self.key.weight", keys);
        Assert.Contains("bert.encoder.layer.11.intermediate_query.dense.weight", keys);
    }

    [Fact]
    public void Gpt2SmallHasHuggingFaceNamesShapesAndCount()
    {
        using var model = new Gpt2LMHeadModel(Gpt2Config.Small, Meta);
        AssertKeys("gpt2_small", model);
        using var untied = new Gpt2LMHeadModel(Gpt2Config.Small with { TieWordEmbeddings = false }, Meta);
        Assert.Contains("lm_head.weight", untied.state_dict().Keys);
    }

    [Fact]
    public void NoWeightDecayCoversBiasesNormsEmbeddingsAndTokensOnly()
    {
        using var qformer = new QFormer(QFormerConfig.Blip2 with { NumHiddenLayers = 2 }, Meta);
        using var eva = new EvaVisionTransformer(EvaVitConfig.ViTg with { Depth = 2 }, Meta);
        using var gpt2 = new Gpt2LMHeadModel(Gpt2Config.Small with { NLayer = 2 }, Meta);
        using var vit = new VolumeTransformer(new VolumeTransformerConfig(), Meta);
        using var layer = new TransformerLayer(new TransformerLayerOptions { Width = 16, Heads = 2, MlpHidden = 32, LayerScaleInit = 1e-5, FeedForward = FeedForwardKind.SwiGluNormed }, Meta);
        using var pool = new ClipAttentionPool(16, 2, 4, device: Meta);
        using var mask = new MaskToken(16, Meta);
        foreach (var module in new nn.Module[] { qformer, eva, gpt2, vit, layer, pool, mask })
        {
            var noDecay = NoWeightDecay.ParameterNames(module);
            var parameters = module.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            Assert.Subset(parameters.Keys.ToHashSet(), noDecay.ToHashSet());
            foreach (var (name, p) in parameters)
            {
                var last = name[(name.LastIndexOf('.') + 1)..];
                var path = name.Split('.');
                // Decayed: the weight matrices of linear layers and convolutions, nothing else.
                var isMatrix = last == "weight" && p.Dimensions >= 2 && !path.Any(s => s.Contains("embeddings", StringComparison.Ordinal) || s is "wte" or "wpe");
                Assert.True(isMatrix != noDecay.Contains(name), $"{module.GetName()}: {name} ({string.Join("x", p.shape)}) {(noDecay.Contains(name) ? "is" : "is not")} declared no-decay");
            }
        }

        Assert.Contains("query_tokens", NoWeightDecay.ParameterNames(qformer));
        Assert.Contains("blocks.0.attn.q_bias", NoWeightDecay.ParameterNames(eva));
        Assert.Contains("cls_token", NoWeightDecay.ParameterNames(vit));
        Assert.Contains("attn_pool.latent", NoWeightDecay.ParameterNames(vit));
        Assert.Contains("ls1.gamma", NoWeightDecay.ParameterNames(layer));
        Assert.Contains("positional_embedding", NoWeightDecay.ParameterNames(pool));
    }

    private static void AssertKeys(string name, nn.Module model)
    {
        using var document = JsonDocument.Parse(File.ReadAllText(TestData.Golden("blocks_keys.json")));
        var entry = document.RootElement.GetProperty(name);
        var expected = entry.GetProperty("keys").EnumerateObject()
            .ToDictionary(p => p.Name, p => p.Value.EnumerateArray().Select(e => e.GetInt64()).ToArray());
        var actual = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.shape);
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), actual.Keys.Order(StringComparer.Ordinal));
        foreach (var (key, shape) in expected)
        {
            Assert.True(shape.SequenceEqual(actual[key]), $"{key}: expected [{string.Join(", ", shape)}], got [{string.Join(", ", actual[key])}]");
        }

        Assert.Equal(entry.GetProperty("parameters").GetInt64(), actual.Values.Sum(s => s.Aggregate(1L, (a, b) => a * b)));
        Assert.True(model.state_dict().Keys.ToHashSet().SetEquals(actual.Keys), "state dict = parameters (no buffers)");
    }
}
