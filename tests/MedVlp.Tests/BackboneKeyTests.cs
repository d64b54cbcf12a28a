using System.Text.Json;
using MedVlp.Modeling.Backbones;
using MedVlp.Testing;
using MedVlp.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Tests;

/// <summary>
/// Full-size MedVlp backbones built on the meta device take the released checkpoints' tensors name for name and shape
/// for shape once the layout table has mapped them (BLIP-2 Q-Former with 32 queries, EVA ViT-g with 39 blocks, GPT-2 124M).
/// </summary>
public sealed class BackboneKeyTests
{
    public static TheoryData<string, string, string?> Cases => new()
    {
        { "lavis-qformer", "lavis-qformer", null },
        { "hf-blip2-qformer", "hf-blip2-qformer", null },
        { "lavis-eva-vit", "lavis-eva-vit", null },
        { "hf-blip2-vision", "hf-blip2-vision", null },
        { "hf-gpt2", "hf-gpt2", null },
        { "hf-gpt2-released", "hf-gpt2", null },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void ReleasedKeysFitTheMetaModel(string list, string layoutName, string? unused)
    {
        _ = unused;
        var layout = WeightLayouts.Get(layoutName);
        using var module = Build(layoutName);
        var expected = module.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape, StringComparer.Ordinal);
        var source = Keys(list);
        const string prefix = "";
        var mapped = new Dictionary<string, long[]>(StringComparer.Ordinal);
        foreach (var (name, shape) in source)
        {
            if (layout.IsIgnored(name))
            {
                continue;
            }

            var target = layout.Map(name);
            var transposed = layout.IsTransposed(target);
            Assert.True(target.StartsWith(prefix, StringComparison.Ordinal), $"{name} -> {target} lacks {prefix}");
            mapped[target[prefix.Length..]] = transposed ? [shape[1], shape[0]] : shape;
        }

        var missing = expected.Keys.Where(k => !mapped.ContainsKey(k)).Order(StringComparer.Ordinal).ToList();
        var unexpected = mapped.Keys.Where(k => !expected.ContainsKey(k)).Order(StringComparer.Ordinal).ToList();
        // BLIP-2 (OPT/T5) checkpoints leave out the Q-Former's text path (word/position embeddings and the text FFN of
        // each layer), which MedVlp's Q-Former has for stage-1 training: a non-strict load reports exactly those.
        if (layoutName.EndsWith("qformer", StringComparison.Ordinal))
        {
            Assert.All(missing, m => Assert.Matches(@"^bert\.(embeddings\.(word|position)_embeddings\.weight|encoder\.layer\.\d+\.(intermediate|output)\.)", m));
            Assert.Equal(2 + (12 * 6), missing.Count);
            missing.Clear();
        }

        // ln_vision follows the ViT inside BLIP-2; it loads into the composite model, not into the ViT itself.
        if (layoutName.EndsWith("eva-vit", StringComparison.Ordinal) || layoutName == "hf-blip2-vision")
        {
            Assert.Equal(["ln_vision.bias", "ln_vision.weight"], unexpected);
            unexpected.Clear();
        }

        Assert.True(missing.Count == 0 && unexpected.Count == 0,
            $"missing {missing.Count}: {string.Join(", ", missing.Take(6))}; unexpected {unexpected.Count}: {string.Join(", ", unexpected.Take(6))}");
        foreach (var (name, shape) in mapped.Where(kv => expected.ContainsKey(kv.Key)))
        {
            Assert.True(shape.SequenceEqual(expected[name]), $"{name}: model [{string.Join(", ", expected[name])}], checkpoint [{string.Join(", ", shape)}]");
        }
    }

    private static nn.Module Build(string layout)
    {
        var meta = new Device("meta");
        return layout switch
        {
            "lavis-qformer" or "hf-blip2-qformer" => new QFormer(QFormerConfig.Blip2, meta),
            "lavis-eva-vit" or "hf-blip2-vision" => new EvaVisionTransformer(EvaVitConfig.ViTg, meta),
            _ => new Gpt2LMHeadModel(Gpt2Config.Small, meta),
        };
    }

    private static Dictionary<string, long[]> Keys(string list)
    {
        using var document = JsonDocument.Parse(File.ReadAllText(TestData.Golden("weights/weights_golden.json")));
        return document.RootElement.GetProperty("keys").GetProperty(list).EnumerateArray()
            .ToDictionary(k => k.GetProperty("name").GetString()!, k => k.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray(), StringComparer.Ordinal);
    }
}
