using System.Text.Json;
using MedVlp.Architectures.MedBlip;
using MedVlp.Modeling;
using MedVlp.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Tests.MedBlip;

/// <summary>The full-size MedBLIP on the <c>meta</c> device against the reference key lists (tests/golden/data/blocks_keys.json).</summary>
public sealed class MedBlipKeyTests
{
    [Fact]
    public void FullSizeHasTheReleasedNamesShapesAndTrainableSplit()
    {
        using var model = (MedBlipModel)ModelRegistry.Create(MedBlipConfig.ArchitectureName, ModelRegistry.Full, new ModelCreateOptions { Device = new Device(DeviceType.META) });
        var actual = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.shape);
        using var document = JsonDocument.Parse(File.ReadAllText(TestData.Golden("blocks_keys.json")));

        // EVA ViT-g: every block and the CLS token as LAVIS names them, under visual_encoder; its 2D patch_embed and
        // pos_embed are replaced by patch_embed_3d (Conv3d 1 -> 1408, kernel 32) and pos_embed_3d (1, 344, 1408).
        var eva = Keys(document, "eva_vit_g").Where(kv => kv.Key.StartsWith("blocks.", StringComparison.Ordinal) || kv.Key == "cls_token")
            .ToDictionary(kv => "visual_encoder." + kv.Key, kv => kv.Value);
        var vision = actual.Where(kv => kv.Key.StartsWith("visual_encoder.", StringComparison.Ordinal) && !kv.Key.Contains("3d", StringComparison.Ordinal))
            .ToDictionary(kv => kv.Key, kv => kv.Value);
        AssertSame(eva, vision);
        Assert.Equal(39, vision.Keys.Where(k => k.StartsWith("visual_encoder.blocks.", StringComparison.Ordinal)).Select(k => k.Split('.')[2]).Distinct().Count());
        Assert.Equal([1408L, 1, 32, 32, 32], actual["visual_encoder.patch_embed_3d.proj.weight"]);
        Assert.Equal([1L, 344, 1408], actual["visual_encoder.pos_embed_3d"]);

        // The BLIP-2 Q-Former, LAVIS names under Qformer (query_tokens with it).
        var qformer = Keys(document, "qformer_blip2").ToDictionary(kv => "Qformer." + kv.Key, kv => kv.Value);
        AssertSame(qformer, actual.Where(kv => kv.Key.StartsWith("Qformer.", StringComparison.Ordinal)).ToDictionary(kv => kv.Key, kv => kv.Value));
        Assert.Equal([1L, 32, 768], actual["Qformer.query_tokens"]);
        for (var i = 0; i < 12; i++)
        {
            Assert.Equal(i % 2 == 0, actual.ContainsKey($"Qformer.bert.encoder.layer.{i}.crossattention.self.key.weight"));
            Assert.Contains($"Qformer.bert.encoder.layer.{i}.intermediate_query.dense.weight", actual.Keys);
            Assert.Contains($"Qformer.bert.encoder.layer.{i}.output_query.LayerNorm.weight", actual.Keys);
        }

        Assert.Equal([768L, 1408], actual["Qformer.bert.encoder.layer.0.crossattention.self.key.weight"]);

        // BioMedLM in the GPT-2 layout, the heads as released.
        Assert.Equal([28896L, 2560], actual["lm_model.transformer.wte.weight"]);
        Assert.Equal([7680L, 2560], actual["lm_model.transformer.h.31.attn.c_attn.weight"]);
        Assert.DoesNotContain("lm_model.transformer.h.32.ln_1.weight", actual.Keys);
        Assert.Equal([2560L, 768], actual["proj.weight"]);
        Assert.Equal([256L, 768], actual["vision_proj.weight"]);
        Assert.Equal([256L, 768], actual["text_proj.weight"]);
        Assert.Equal([256L, 768], actual["qa_proj.weight"]);
        Assert.Empty(actual["temp"]);
        Assert.Equal([1408L], actual["ln_vision.weight"]);

        var counts = model.CountParameters();
        var frozen = actual.Where(kv => kv.Key.StartsWith("lm_model.", StringComparison.Ordinal) || kv.Key.StartsWith("visual_encoder.blocks.", StringComparison.Ordinal) || kv.Key == "visual_encoder.cls_token")
            .Sum(kv => kv.Value.Aggregate(1L, (a, b) => a * b));
        Assert.Equal(frozen, counts.Frozen);
        Assert.Equal(counts.Total - frozen, counts.Trainable);
        Assert.Equal(counts.Total, model.Config.EstimateParameters());
        Assert.Equal(model.TrainableParameters().Sum(p => p.Parameter.numel()), counts.Trainable);
        Assert.DoesNotContain(model.TrainableParameters(), p => p.Name.StartsWith("lm_model.", StringComparison.Ordinal) || p.Name.StartsWith("visual_encoder.blocks.", StringComparison.Ordinal));
        Assert.Equal(["lm_model"], model.FrozenComponents);
    }

    [Fact]
    public void TinyConfigRoundTripsThroughJsonAndRejectsAMismatchedQFormer()
    {
        var tiny = MedBlipConfig.Tiny();
        var json = tiny.ToJson();
        Assert.Contains("\"type\": \"medblip\"", json, StringComparison.Ordinal);
        var back = (MedBlipConfig)ArchitectureConfig.FromJson(json);
        Assert.Equal(tiny.ToJson(), back.ToJson());
        var bad = tiny with { QFormer = tiny.QFormer with { EncoderWidth = 65 } };
        var error = Assert.Throws<ArgumentException>(bad.Validate);
        Assert.Equal("q_former.encoder_width", error.ParamName);
        using var model = ModelRegistry.Create(tiny);
        Assert.Equal(model.CountParameters().Total, tiny.EstimateParameters());
    }

    private static Dictionary<string, long[]> Keys(JsonDocument document, string name) =>
        document.RootElement.GetProperty(name).GetProperty("keys").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.EnumerateArray().Select(e => e.GetInt64()).ToArray());

    private static void AssertSame(Dictionary<string, long[]> expected, Dictionary<string, long[]> actual)
    {
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), actual.Keys.Order(StringComparer.Ordinal));
        foreach (var (key, shape) in expected)
        {
            Assert.True(shape.SequenceEqual(actual[key]), $"{key}: expected [{string.Join(", ", shape)}], got [{string.Join(", ", actual[key])}]");
        }
    }
}
