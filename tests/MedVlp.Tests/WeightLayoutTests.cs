using System.Text.Json;
using MedVlp.Modeling;
using MedVlp.Serialization;
using MedVlp.Testing;
using MedVlp.Weights;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MedVlp.Tests;

/// <summary>Released-checkpoint layouts loaded by name (golden files from tests/golden/make_weights_golden.py).</summary>
[Collection(nameof(TorchRandomState))] // creates randomly initialised modules: libtorch's global generator is shared
public sealed class WeightLayoutTests
{
    private static readonly Lazy<JsonDocument> Golden = new(() => JsonDocument.Parse(File.ReadAllText(TestData.Golden("weights/weights_golden.json"))));

    private static JsonElement Root => Golden.Value.RootElement;

    [Theory]
    [InlineData("bert_tiny.bin")]
    [InlineData("bert_tiny.safetensors")]
    public void HuggingFaceBertCheckpointLoadsByNameAndMatchesTorch(string file)
    {
        using var scope = NewDisposeScope();
        var g = Root.GetProperty("bert");
        var model = TinyBert(g.GetProperty("config"));
        var live = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        var report = WeightLoader.Load(model, TestData.Golden("weights/" + file), new WeightLoadOptions { Layout = "hf-bert" });
        Assert.Equal(live, DisposeScopeManager.Statistics.ThreadTotalLiveCount); // the file's tensors are freed after the copy

        Assert.True(report.IsComplete, report.Describe());
        Assert.Equal(model.state_dict().Count, report.Loaded.Count);
        Assert.Equal(["cls.predictions.bias", "cls.predictions.transform.dense.weight", "cls.seq_relationship.weight"], report.Ignored);
        model.eval();
        var ids = Rows(g.GetProperty("ids"));
        var mask = Rows(g.GetProperty("mask"));
        using var noGrad = no_grad();
        var hidden = model.forward(ids, mask);
        AssertClose(g.GetProperty("hidden"), hidden, 1e-5);
    }

    [Fact]
    public void StrictLoadWithoutTheLayoutNamesTheProblemsAndChangesNothing()
    {
        using var scope = NewDisposeScope();
        var model = TinyBert(Root.GetProperty("bert").GetProperty("config"));
        var before = model.state_dict()["embeddings.word_embeddings.weight"].clone();
        var path = TestData.Golden("weights/bert_tiny.bin");
        var ex = Assert.Throws<ModelFormatException>(() => WeightLoader.Load(model, path));
        Assert.Equal(path, ex.FilePath);
        Assert.Contains("unexpected 42", ex.Message, StringComparison.Ordinal);
        Assert.Contains("bert.embeddings.LayerNorm.beta", ex.Message, StringComparison.Ordinal);
        Assert.Contains("missing 39", ex.Message, StringComparison.Ordinal);
        Assert.True(before.eq(model.state_dict()["embeddings.word_embeddings.weight"]).all().item<bool>());

        // Non-strict, the same file reports the same sets and loads nothing.
        var report = WeightLoader.Load(model, path, new WeightLoadOptions { Strict = false });
        Assert.Empty(report.Loaded);
        Assert.Equal(model.state_dict().Count, report.Missing.Count);
        Assert.Equal(Root.GetProperty("bert").GetProperty("keys").GetInt32(), report.Unexpected.Count);
    }

    [Fact]
    public void ShapeAndDTypeMismatchesAreReportedAndDTypeIsConvertedOnRequest()
    {
        using var scope = NewDisposeScope();
        var config = Root.GetProperty("bert").GetProperty("config");
        var model = TinyBert(config);
        var source = WeightFile.Load(TestData.Golden("weights/bert_tiny.safetensors"));
        source["bert.pooler.dense.weight"] = zeros(3, 3);
        source["bert.embeddings.word_embeddings.weight"] = source["bert.embeddings.word_embeddings.weight"].to_type(ScalarType.Float16);
        var report = WeightLoader.Load(model, source, new WeightLoadOptions { Layout = "hf-bert", Strict = false });
        Assert.Equal(["pooler.dense.weight", "embeddings.word_embeddings.weight"], report.Mismatched.Select(m => m.Name).Order().Reverse());
        Assert.Contains(report.Mismatched, m => m.Found.Contains("Float16", StringComparison.Ordinal));
        Assert.DoesNotContain("pooler.dense.weight", report.Missing); // present but mismatched, not missing

        source["bert.pooler.dense.weight"] = zeros(32, 32);
        var converted = WeightLoader.Load(model, source, new WeightLoadOptions { Layout = "hf-bert", ConvertDType = true });
        Assert.True(converted.IsComplete);
        Assert.Equal(ScalarType.Float32, model.state_dict()["embeddings.word_embeddings.weight"].dtype);
    }

    [Fact]
    public void TrainingCheckpointLoadsWithThePrefixStripped()
    {
        using var scope = NewDisposeScope();
        var module = new Holder("encoder", nn.Linear(3, 2));
        var report = WeightLoader.Load(module, TestData.Golden("weights/training_checkpoint.pth"),
            new WeightLoadOptions { StripPrefix = "model." });
        Assert.True(report.IsComplete, report.Describe());
        Assert.Equal(6.0, module.state_dict()["encoder.weight"].sum().item<float>());
    }

    [Fact]
    public void Gpt2Conv1DWeightsAreTransposedIntoLinear()
    {
        using var scope = NewDisposeScope();
        var g = Root.GetProperty("gpt2");
        var cAttn = nn.Linear(24, 72);
        var cFc = nn.Linear(24, 96);
        var module = new Holder("transformer", new Holder("h", new ModuleList<nn.Module>(
            new Holder("attn", new Holder("c_attn", cAttn)),
            new Holder("mlp", new Holder("c_fc", cFc)))));
        var report = WeightLoader.Load(module, TestData.Golden("weights/gpt2_tiny.bin"), new WeightLoadOptions { Layout = "hf-gpt2", Strict = false });

        Assert.Equal(4, report.Loaded.Count);
        Assert.Empty(report.Missing);
        Assert.Empty(report.Mismatched);
        Assert.Equal(4, report.Ignored.Count); // attn.bias and attn.masked_bias of both blocks
        var x = tensor(g.GetProperty("x").EnumerateArray().Select(e => e.GetSingle()).ToArray(), g.GetProperty("x_shape").EnumerateArray().Select(e => e.GetInt64()).ToArray());
        using var noGrad = no_grad();
        AssertClose(g.GetProperty("c_attn"), cAttn.forward(x), 1e-5);
        AssertClose(g.GetProperty("c_fc"), cFc.forward(x), 1e-5);
    }

    [Theory]
    [InlineData("hf-blip2-qformer", "lavis-qformer")]
    [InlineData("hf-blip2-vision", "lavis-eva-vit")]
    [InlineData("lavis-qformer", "lavis-qformer")]
    [InlineData("lavis-eva-vit", "lavis-eva-vit")]
    [InlineData("hf-gpt2-released", "hf-gpt2")]
    [InlineData("hf-gpt2", "hf-gpt2")]
    [InlineData("torchvision-resnet50", "torchvision-resnet50")]
    [InlineData("timm-vit", "timm-vit")]
    public void FullSizeKeyListsMapOntoMedVlpNames(string sourceList, string canonicalList)
    {
        var layoutName = sourceList == "hf-gpt2-released" ? "hf-gpt2" : sourceList;
        var layout = WeightLayouts.Get(layoutName);
        var source = Keys(sourceList);
        Assert.Same(layout, WeightLayouts.Detect(source.Keys));

        var mapped = new Dictionary<string, long[]>(StringComparer.Ordinal);
        foreach (var (name, shape) in source)
        {
            if (layout.IsIgnored(name))
            {
                continue;
            }

            var target = layout.Map(name);
            mapped.Add(target, layout.IsTransposed(target) ? [shape[1], shape[0]] : shape);
        }

        // MedVlp's names: the canonical list, with Conv1D weights in Linear's [out, in] and without ignored buffers.
        var canonicalLayout = WeightLayouts.Get(canonicalList);
        var expected = Keys(canonicalList)
            .Where(kv => !canonicalLayout.IsIgnored(kv.Key))
            .ToDictionary(kv => canonicalLayout.Map(kv.Key), kv => canonicalLayout.IsTransposed(canonicalLayout.Map(kv.Key)) ? new[] { kv.Value[1], kv.Value[0] } : kv.Value, StringComparer.Ordinal);
        if (sourceList == "hf-gpt2-released")
        {
            expected.Remove("lm_head.weight"); // tied to transformer.wte.weight, not stored
        }

        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), mapped.Keys.Order(StringComparer.Ordinal));
        foreach (var (name, shape) in expected)
        {
            Assert.True(shape.SequenceEqual(mapped[name]), $"{name}: expected [{string.Join(", ", shape)}], mapped [{string.Join(", ", mapped[name])}]");
        }

        if (layoutName == "hf-gpt2")
        {
            Assert.Equal([2304L, 768L], mapped["transformer.h.11.attn.c_attn.weight"]);
        }
    }

    [Fact]
    public void TorchVisionResNet50HasTorchvisionStateDictNames()
    {
        // TorchSharp's TorchVision builds resnet50 on the meta device; its state dict must be torchvision's, key for key.
        using var model = torchvision.models.resnet50(device: new Device("meta"));
        var actual = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape, StringComparer.Ordinal);
        var expected = Keys("torchvision-resnet50");
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), actual.Keys.Order(StringComparer.Ordinal));
        foreach (var (name, shape) in expected)
        {
            Assert.Equal(shape, actual[name]);
        }
    }

    [Fact]
    public void BertBaseKeysAreDetectedAsHuggingFaceBert()
    {
        using var document = JsonDocument.Parse(File.ReadAllText(TestData.Golden("bert_base_uncased_keys.json")));
        var names = document.RootElement.GetProperty("keys").EnumerateArray().Select(k => k.GetProperty("name").GetString()!).ToList();
        Assert.Equal("hf-bert", WeightLayouts.Detect(names)?.Name);
        Assert.Equal("hf-bert", WeightLayouts.Detect(names.Select(n => "bert." + n))?.Name);
        Assert.Throws<ArgumentException>(() => WeightLayouts.Get("no-such-layout"));
    }

    internal static BertModel TinyBert(JsonElement c) => new(new BertConfig
    {
        VocabSize = c.GetProperty("vocab").GetInt32(),
        HiddenSize = c.GetProperty("hidden").GetInt32(),
        NumHiddenLayers = c.GetProperty("layers").GetInt32(),
        NumAttentionHeads = c.GetProperty("heads").GetInt32(),
        IntermediateSize = c.GetProperty("inter").GetInt32(),
        MaxPositionEmbeddings = c.GetProperty("positions").GetInt32(),
        TypeVocabSize = c.GetProperty("types").GetInt32(),
    });

    private static Dictionary<string, long[]> Keys(string list) => Root.GetProperty("keys").GetProperty(list).EnumerateArray()
        .ToDictionary(k => k.GetProperty("name").GetString()!, k => k.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray(), StringComparer.Ordinal);

    private static Tensor Rows(JsonElement rows)
    {
        var data = rows.EnumerateArray().Select(r => r.EnumerateArray().Select(e => e.GetInt64()).ToArray()).ToArray();
        return tensor(data.SelectMany(r => r).ToArray(), [data.Length, data[0].Length]);
    }

    internal static void AssertClose(JsonElement expected, Tensor actual, double tolerance)
    {
        var want = expected.EnumerateArray().Select(e => e.GetSingle()).ToArray();
        var got = actual.contiguous().flatten().data<float>().ToArray();
        Assert.Equal(want.Length, got.Length);
        var worst = want.Zip(got, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(worst <= tolerance, $"largest difference {worst:g3} > {tolerance:g1}");
    }

    /// <summary>A module with one named child (to build nested state-dict names in tests).</summary>
    private sealed class Holder : nn.Module
    {
        public Holder(string name, nn.Module child)
            : base(nameof(Holder))
        {
            register_module(name, child);
        }
    }
}
