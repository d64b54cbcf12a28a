using System.Text.Json;
using MedVlp.Modeling;
using MedVlp.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Tests;

/// <summary>The dual encoder against PyTorch's own modules (tests/golden/make_vlp_golden.py), and BERT's layout against bert-base-uncased.</summary>
public sealed class EncoderParityTests
{
    [Fact]
    public void DualEncoderMatchesPyTorchModules()
    {
        using var document = JsonDocument.Parse(File.ReadAllText(TestData.Golden("vlp_tiny.json")));
        var root = document.RootElement;
        var config = root.GetProperty("config").Deserialize<Clip3dConfig>(ModelJson.Options)!;
        using var model = new DualEncoderModel(config);
        VisionLanguageModel.LoadWeights(model, TestData.Golden("vlp_tiny.safetensors"));
        model.eval();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var volumeShape = root.GetProperty("volumes_shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();
        var volumes = tensor(root.GetProperty("volumes").EnumerateArray().Select(e => e.GetSingle()).ToArray(), volumeShape);
        var ids = tensor(Flatten(root.GetProperty("input_ids")), [2, root.GetProperty("input_ids")[0].GetArrayLength()]);
        var mask = tensor(Flatten(root.GetProperty("attention_mask")), ids.shape);

        AssertClose(root.GetProperty("volume_embeddings"), model.EncodeImages(volumes));
        AssertClose(root.GetProperty("text_embeddings"), model.EncodeTexts(ids, mask));
    }

    [Fact]
    public void BertBaseStateDictHasHuggingFaceNamesAndShapes()
    {
        // Built on the meta device: the structure of a 110 M-parameter model without allocating its weights.
        using var model = new BertModel(BertConfig.BertBase, new Device(DeviceType.META));
        var actual = model.state_dict().Select(kv => (kv.Key, Shape: kv.Value.shape)).ToArray();
        using var document = JsonDocument.Parse(File.ReadAllText(TestData.Golden("bert_base_uncased_keys.json")));
        var expected = document.RootElement.GetProperty("keys").EnumerateArray()
            .Select(e => (Key: e.GetProperty("name").GetString()!, Shape: e.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray()))
            .ToArray();
        Assert.Equal(expected.Select(e => e.Key).Order(StringComparer.Ordinal), actual.Select(a => a.Key).Order(StringComparer.Ordinal));
        var byName = actual.ToDictionary(a => a.Key, a => a.Shape);
        foreach (var (key, shape) in expected)
        {
            Assert.True(shape.SequenceEqual(byName[key]), $"{key}: expected [{string.Join(", ", shape)}], got [{string.Join(", ", byName[key])}]");
        }

        Assert.Equal(document.RootElement.GetProperty("parameters").GetInt64(), actual.Sum(a => a.Shape.Aggregate(1L, (x, y) => x * y)));
    }

    [Fact]
    public void DualEncoderKeepsTheBertNamesUnderTextModel()
    {
        var config = TestModels.TinyConfig() with { Text = TestModels.TinyConfig().Text with { AddPoolingLayer = true } };
        using var model = new DualEncoderModel(config, new Device(DeviceType.META));
        var keys = model.state_dict().Keys.ToHashSet(StringComparer.Ordinal);
        Assert.Contains("text_model.encoder.layer.0.attention.self.query.weight", keys);
        Assert.Contains("text_model.pooler.dense.weight", keys);
        Assert.Contains("vision_model.patch_embed.proj.weight", keys);
        Assert.Contains("vision_model.blocks.0.attn.qkv.weight", keys);
        Assert.Contains("logit_scale", keys);
    }

    private static long[] Flatten(JsonElement rows) => rows.EnumerateArray().SelectMany(r => r.EnumerateArray().Select(e => e.GetInt64())).ToArray();

    private static void AssertClose(JsonElement expectedRows, Tensor actual)
    {
        var expected = expectedRows.EnumerateArray().SelectMany(r => r.EnumerateArray().Select(e => e.GetSingle())).ToArray();
        var values = actual.contiguous().data<float>().ToArray();
        Assert.Equal(expected.Length, values.Length);
        for (var n = 0; n < values.Length; n++)
        {
            Assert.True(Math.Abs(expected[n] - values[n]) < 2e-5, $"element {n}: expected {expected[n]}, got {values[n]}");
        }
    }
}
