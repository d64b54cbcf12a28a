using System.Text.Json;
using MedVlp.Modeling.Backbones;
using MedVlp.Serialization;
using MedVlp.Testing;
using MedVlp.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Tests;

/// <summary>
/// Every weight layout, end to end: a tiny checkpoint in the source's own names and formats (torch.save zip and
/// safetensors), written by torch modules built after the released code (tests/golden/make_layout_parity_golden.py),
/// is loaded by layout name into MedVlp's module, whose outputs must equal torch's to 1e-5.
/// </summary>
[Collection(nameof(TorchRandomState))] // builds randomly initialised modules: libtorch's global generator is shared
public sealed class LayoutParityTests
{
    private const double Tolerance = 1e-5;

    private static readonly Lazy<JsonDocument> Golden = new(() => JsonDocument.Parse(File.ReadAllText(TestData.Golden("weights/parity/parity_golden.json"))));

    private static JsonElement Root => Golden.Value.RootElement;

    [Theory]
    [InlineData("lavis_blip2.pth")]
    [InlineData("lavis_blip2.safetensors")]
    public void LavisEvaViTWithLnVisionLoadsFromAWholeBlip2CheckpointAndMatchesTorch(string file)
    {
        using var scope = NewDisposeScope();
        var g = Root.GetProperty("lavis_blip2");
        using var eva = new EvaVisionTransformer(Eva(g.GetProperty("vision"), postNormEps: 1e-5));
        var report = WeightLoader.Load(eva, Path(file), new WeightLoadOptions
        {
            Layout = "lavis-eva-vit",
            StripPrefix = file.EndsWith(".pth", StringComparison.Ordinal) ? "model." : null, // LAVIS saves {"model": state_dict}
            ConvertDType = true, // LAVIS stores the EVA's Linear/Conv2d weights in float16 (precision="fp16")
        });

        Assert.True(report.IsComplete, report.Describe());
        Assert.Equal(eva.state_dict().Count, report.Loaded.Count);
        Assert.Contains("ln_vision.weight", report.Loaded);
        Assert.All(report.Ignored, name => Assert.DoesNotContain("visual_encoder.", name, StringComparison.Ordinal));
        Assert.Contains(report.Ignored, name => name.EndsWith("Qformer.bert.encoder.layer.0.attention.self.query.weight", StringComparison.Ordinal));
        Assert.Contains(report.Ignored, name => name.EndsWith("itm_head.weight", StringComparison.Ordinal));
        Assert.All(eva.parameters(), p => Assert.Equal(ScalarType.Float32, p.dtype));

        eva.eval();
        using var noGrad = no_grad();
        AssertClose(g.GetProperty("image_embeds"), eva.forward(Input(g.GetProperty("image"), g.GetProperty("image_shape"))));
    }

    [Fact]
    public void Float16WeightsAreAMismatchUnlessConversionIsAsked()
    {
        using var scope = NewDisposeScope();
        var g = Root.GetProperty("lavis_blip2");
        using var eva = new EvaVisionTransformer(Eva(g.GetProperty("vision"), postNormEps: 1e-5));
        var path = Path("lavis_blip2.safetensors");
        var ex = Assert.Throws<ModelFormatException>(() => WeightLoader.Load(eva, path, new WeightLoadOptions { Layout = "lavis-eva-vit" }));
        Assert.Equal(path, ex.FilePath);
        var fp16 = g.GetProperty("fp16").GetArrayLength();
        Assert.Contains($"mismatched {fp16}:", ex.Message, StringComparison.Ordinal);
        Assert.Contains("visual_encoder.blocks.0.attn.qkv.weight -> blocks.0.attn.qkv.weight expected [96, 32] Float32, found [96, 32] Float16", ex.Message, StringComparison.Ordinal);

        var report = WeightLoader.Load(eva, path, new WeightLoadOptions { Layout = "lavis-eva-vit", Strict = false });
        Assert.Equal(fp16, report.Mismatched.Count);
        Assert.Equal(eva.state_dict().Count - fp16, report.Loaded.Count);
    }

    [Theory]
    [InlineData("lavis_blip2.pth")]
    [InlineData("lavis_blip2.safetensors")]
    public void MedBlipTakesTheEvaBlocksAndClsTokenOfALavisCheckpointAndLeavesIts2dEmbeddings(string file)
    {
        // MedBLIP as released: the 2D EVA checkpoint's blocks.* and cls_token load into the 3D vision encoder; its 2D
        // patch_embed / pos_embed have no place there (patch_embed_3d / pos_embed_3d train from scratch).
        using var scope = NewDisposeScope();
        var g = Root.GetProperty("lavis_blip2");
        var v = g.GetProperty("vision");
        var config = MedVlp.Architectures.MedBlip.MedBlipConfig.Tiny() with
        {
            VisionWidth = v.GetProperty("dim").GetInt32(),
            VisionDepth = v.GetProperty("depth").GetInt32(),
            VisionHeads = v.GetProperty("heads").GetInt32(),
            VisionMlpRatio = v.GetProperty("mlp_ratio").GetDouble(),
            QFormer = QFormerOf(g.GetProperty("qformer")),
            MaxTextTokens = g.GetProperty("qformer").GetProperty("positions").GetInt32(),
        };
        using var medblip = new MedVlp.Architectures.MedBlip.MedBlipModel(config);
        var prefix = file.EndsWith(".pth", StringComparison.Ordinal) ? "model." : null;
        var report = WeightLoader.Load(medblip.VisionEncoder, Path(file), new WeightLoadOptions
        {
            Layout = "lavis-eva-vit", StripPrefix = prefix, ConvertDType = true, Strict = false,
        });

        Assert.Equal(["patch_embed_3d.proj.bias", "patch_embed_3d.proj.weight", "pos_embed_3d"], report.Missing.Order(StringComparer.Ordinal));
        Assert.Empty(report.Mismatched);
        Assert.Contains(report.Unexpected, n => n.EndsWith("pos_embed", StringComparison.Ordinal));
        Assert.Contains(report.Unexpected, n => n.EndsWith("patch_embed.proj.weight", StringComparison.Ordinal));
        Assert.Equal(medblip.VisionEncoder.state_dict().Count - 3, report.Loaded.Count);

        // The same tensors as the EVA ViT that matches torch (LavisEvaViTWithLnVision...): every block and the CLS token.
        using var eva = new EvaVisionTransformer(Eva(v, postNormEps: 1e-5));
        Assert.True(WeightLoader.Load(eva, Path(file), new WeightLoadOptions { Layout = "lavis-eva-vit", StripPrefix = prefix, ConvertDType = true }).IsComplete);
        var reference = eva.state_dict();
        var compared = 0;
        foreach (var (name, tensor) in medblip.VisionEncoder.state_dict())
        {
            if (name.StartsWith("blocks.", StringComparison.Ordinal) || name == "cls_token")
            {
                Assert.True(tensor.allclose(reference[name], rtol: 0, atol: 0), name);
                compared++;
            }
        }

        Assert.Equal(report.Loaded.Count, compared);
    }

    [Theory]
    [InlineData("lavis_blip2.pth")]
    [InlineData("lavis_blip2.safetensors")]
    public void LavisQFormerLoadsStrictlyAndMatchesTorch(string file)
    {
        using var scope = NewDisposeScope();
        var g = Root.GetProperty("lavis_blip2");
        using var qformer = new QFormer(QFormerOf(g.GetProperty("qformer")));
        var report = WeightLoader.Load(qformer, Path(file), new WeightLoadOptions
        {
            Layout = "lavis-qformer",
            StripPrefix = file.EndsWith(".pth", StringComparison.Ordinal) ? "model." : null,
        });

        Assert.True(report.IsComplete, report.Describe());
        Assert.Equal(qformer.state_dict().Count, report.Loaded.Count);
        var ignored = report.Ignored.Select(n => n.StartsWith("model.", StringComparison.Ordinal) ? n["model.".Length..] : n).ToList();
        Assert.Contains("Qformer.bert.embeddings.position_ids", ignored);
        Assert.Contains("Qformer.cls.predictions.decoder.weight", ignored);
        Assert.Contains("ln_vision.weight", ignored);
        Assert.Contains("temp", ignored);

        qformer.eval();
        using var noGrad = no_grad();
        var imageEmbeds = Input(g.GetProperty("image_embeds"), g.GetProperty("image_embeds_shape"));
        AssertClose(g.GetProperty("query_output"), qformer.forward(imageEmbeds));
    }

    [Theory]
    [InlineData("hf_blip2.bin")]
    [InlineData("hf_blip2.safetensors")]
    public void HuggingFaceBlip2VisionModelLoadsAndMatchesTorch(string file)
    {
        using var scope = NewDisposeScope();
        var lavis = Root.GetProperty("lavis_blip2");
        var g = Root.GetProperty("hf_blip2");
        using var eva = new EvaVisionTransformer(Eva(lavis.GetProperty("vision"), postNormEps: 1e-6));
        var report = WeightLoader.Load(eva, Path(file), new WeightLoadOptions { Layout = "hf-blip2-vision" });

        Assert.True(report.IsComplete, report.Describe());
        Assert.Contains("ln_vision.weight", report.Loaded); // post_layernorm
        Assert.Equal(eva.state_dict().Count, report.Loaded.Count);
        eva.eval();
        using var noGrad = no_grad();
        AssertClose(g.GetProperty("image_embeds"), eva.forward(Input(lavis.GetProperty("image"), lavis.GetProperty("image_shape"))));
    }

    [Theory]
    [InlineData("hf_blip2.bin")]
    [InlineData("hf_blip2.safetensors")]
    public void HuggingFaceBlip2QFormerLoadsWithItsTextPathReportedMissingAndMatchesTorch(string file)
    {
        using var scope = NewDisposeScope();
        var lavis = Root.GetProperty("lavis_blip2");
        var g = Root.GetProperty("hf_blip2");
        using var qformer = new QFormer(QFormerOf(lavis.GetProperty("qformer")));
        var path = Path(file);

        // Hugging Face's Blip2QFormerModel has no word/position embeddings and no text feed-forward: strict refuses.
        var ex = Assert.Throws<ModelFormatException>(() => WeightLoader.Load(qformer, path, new WeightLoadOptions { Layout = "hf-blip2-qformer" }));
        Assert.Contains("bert.embeddings.word_embeddings.weight", ex.Message, StringComparison.Ordinal);

        var report = WeightLoader.Load(qformer, path, new WeightLoadOptions { Layout = "hf-blip2-qformer", Strict = false });
        var layers = lavis.GetProperty("qformer").GetProperty("layers").GetInt32();
        Assert.Equal(2 + (6 * layers), report.Missing.Count);
        Assert.All(report.Missing, m => Assert.Matches(@"^bert\.(embeddings\.(word|position)_embeddings\.weight|encoder\.layer\.\d+\.(intermediate|output)\.)", m));
        Assert.Empty(report.Unexpected);
        Assert.Empty(report.Mismatched);
        Assert.Equal(["language_projection.bias", "language_projection.weight"], report.Ignored.Where(n => n.StartsWith("language", StringComparison.Ordinal)).Order(StringComparer.Ordinal));

        qformer.eval();
        using var noGrad = no_grad();
        var imageEmbeds = Input(g.GetProperty("image_embeds"), lavis.GetProperty("image_embeds_shape"));
        AssertClose(g.GetProperty("query_output"), qformer.forward(imageEmbeds));
    }

    [Theory]
    [InlineData("gpt2_lm.bin", 5)] // GPT2LMHeadModel.state_dict(): attn.bias and attn.masked_bias of 2 blocks, tied lm_head.weight
    [InlineData("gpt2_lm.safetensors", 0)] // the released model.safetensors names: no prefix, no buffers, no lm_head
    public void HuggingFaceGpt2LanguageModelLoadsAndItsLogitsMatchTorch(string file, int ignored)
    {
        using var scope = NewDisposeScope();
        var g = Root.GetProperty("gpt2");
        var c = g.GetProperty("config");
        using var model = new Gpt2LMHeadModel(new Gpt2Config
        {
            VocabSize = c.GetProperty("vocab").GetInt32(),
            NPositions = c.GetProperty("positions").GetInt32(),
            NEmbd = c.GetProperty("embd").GetInt32(),
            NLayer = c.GetProperty("layers").GetInt32(),
            NHead = c.GetProperty("heads").GetInt32(),
        });
        var report = WeightLoader.Load(model, Path(file), new WeightLoadOptions { Layout = "hf-gpt2" });

        Assert.True(report.IsComplete, report.Describe());
        Assert.Equal(ignored, report.Ignored.Count);
        Assert.DoesNotContain("lm_head.weight", model.state_dict().Keys); // tied to transformer.wte.weight

        model.eval();
        using var noGrad = no_grad();
        using var output = model.Compute(Ids(g.GetProperty("ids")), null, Ids(g.GetProperty("mask")));
        AssertClose(g.GetProperty("logits"), output.Logits);
    }

    [Theory]
    [InlineData("resnet_tv.pth")] // DataParallel names ("module." prefix), as LVM-Med releases its ResNet-50
    [InlineData("resnet_tv.safetensors")]
    public void TorchvisionResNetLoadsWithRunningStatisticsAndMatchesTorch(string file)
    {
        using var scope = NewDisposeScope();
        var g = Root.GetProperty("resnet");
        var c = g.GetProperty("config");
        using var resnet = new ResNet(new ResNetConfig
        {
            StemWidth = c.GetProperty("stem").GetInt32(),
            Planes = c.GetProperty("planes").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
            Blocks = c.GetProperty("blocks").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
            NumClasses = c.GetProperty("classes").GetInt32(),
        });
        var report = WeightLoader.Load(resnet, Path(file), new WeightLoadOptions { Layout = "torchvision-resnet50" });

        Assert.True(report.IsComplete, report.Describe());
        Assert.Equal(g.GetProperty("keys").GetArrayLength(), report.Loaded.Count);
        Assert.Equal(1234L, resnet.state_dict()["layer1.1.bn2.num_batches_tracked"].item<long>());

        resnet.eval();
        using var noGrad = no_grad();
        AssertClose(g.GetProperty("logits"), resnet.forward(Input(g.GetProperty("x"), g.GetProperty("x_shape"))));
    }

    [Theory]
    [InlineData("timm_vit.pth")]
    [InlineData("timm_vit.safetensors")]
    public void TimmVisionTransformerLoadsAndMatchesTorch(string file)
    {
        using var scope = NewDisposeScope();
        var g = Root.GetProperty("timm_vit");
        using var vit = new VisionTransformer(Vit(g.GetProperty("config")));
        var report = WeightLoader.Load(vit, Path(file), new WeightLoadOptions { Layout = "timm-vit" });

        Assert.True(report.IsComplete, report.Describe());
        Assert.Equal(g.GetProperty("keys").GetArrayLength(), report.Loaded.Count);
        vit.eval();
        using var noGrad = no_grad();
        var x = Input(g.GetProperty("x"), g.GetProperty("x_shape"));
        AssertClose(g.GetProperty("tokens"), vit.ForwardFeatures(x));
        AssertClose(g.GetProperty("logits"), vit.forward(x));
    }

    [Theory]
    [InlineData("timm-vit")] // vit_base_patch16_224
    [InlineData("lavis-eva-vit")] // EVA ViT-g, 39 blocks, with ln_vision
    [InlineData("hf-blip2-vision")]
    public void FullSizeModelsTakeTheReleasedNamesOnTheMetaDevice(string layoutName)
    {
        var meta = new Device(DeviceType.META);
        using nn.Module module = layoutName switch
        {
            "timm-vit" => new VisionTransformer(VisionTransformerConfig.Base16, meta),
            "lavis-eva-vit" => new EvaVisionTransformer(EvaVitConfig.ViTg with { PostNormEps = 1e-5 }, meta),
            _ => new EvaVisionTransformer(EvaVitConfig.ViTg with { PostNormEps = 1e-6 }, meta),
        };
        var layout = WeightLayouts.Get(layoutName);
        using var weights = JsonDocument.Parse(File.ReadAllText(TestData.Golden("weights/weights_golden.json")));
        var mapped = weights.RootElement.GetProperty("keys").GetProperty(layoutName).EnumerateArray()
            .Select(k => (Name: k.GetProperty("name").GetString()!, Shape: k.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray()))
            .Where(k => !layout.IsIgnored(k.Name))
            .ToDictionary(k => layout.Map(k.Name), k => k.Shape, StringComparer.Ordinal);
        var expected = module.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape, StringComparer.Ordinal);
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), mapped.Keys.Order(StringComparer.Ordinal));
        Assert.All(expected, kv => Assert.Equal(kv.Value, mapped[kv.Key]));
        if (layoutName == "timm-vit")
        {
            Assert.Equal(86_567_656L, module.parameters().Sum(p => p.numel())); // timm's vit_base_patch16_224
        }
    }

    [Fact]
    public void APrefixCanBeAddedToLoadABackboneIntoABiggerModel()
    {
        using var scope = NewDisposeScope();
        var g = Root.GetProperty("timm_vit");
        var vit = new VisionTransformer(Vit(g.GetProperty("config")));
        using var holder = new Holder("image_encoder", vit);
        var path = Path("timm_vit.safetensors");

        var ex = Assert.Throws<ModelFormatException>(() => WeightLoader.Load(holder, path, new WeightLoadOptions { Layout = "timm-vit" }));
        Assert.Contains("missing " + holder.state_dict().Count, ex.Message, StringComparison.Ordinal);

        var report = WeightLoader.Load(holder, path, new WeightLoadOptions { Layout = "timm-vit", AddPrefix = "image_encoder." });
        Assert.True(report.IsComplete, report.Describe());
        Assert.All(report.Loaded, n => Assert.StartsWith("image_encoder.", n, StringComparison.Ordinal));
        holder.eval();
        using var noGrad = no_grad();
        AssertClose(g.GetProperty("logits"), vit.forward(Input(g.GetProperty("x"), g.GetProperty("x_shape"))));
    }

    [Theory]
    [InlineData("lavis_blip2.safetensors", "lavis-qformer / lavis-eva-vit / hf-bert")] // the Q-Former is a BERT: hf-bert matches too, after the more specific tables
    [InlineData("hf_blip2.safetensors", "hf-blip2-qformer / hf-blip2-vision")]
    [InlineData("gpt2_lm.bin", "hf-gpt2")]
    [InlineData("resnet_tv.safetensors", "torchvision-resnet50")]
    [InlineData("timm_vit.pth", "timm-vit")]
    public void EachFileIsDetectedAsItsLayout(string file, string layouts)
    {
        var info = WeightFile.Inspect(Path(file));
        Assert.Equal(layouts.Split(" / ")[0], info.Layout?.Name);
        var matching = WeightLayouts.All.Where(l => l.Matches(info.Tensors.Select(t => t.Name))).Select(l => l.Name);
        Assert.Equal(layouts, string.Join(" / ", matching));
    }

    [Fact]
    public void AWrongLayoutEndsInAClearMessageThatNamesTheRightOne()
    {
        using var scope = NewDisposeScope();
        var lavis = Root.GetProperty("lavis_blip2");
        using var eva = new EvaVisionTransformer(Eva(lavis.GetProperty("vision"), postNormEps: 1e-6));

        // LAVIS names read with the Hugging Face table: nothing fits, and the message says which tables would.
        var path = Path("lavis_blip2.safetensors");
        var ex = Assert.Throws<ModelFormatException>(() => WeightLoader.Load(eva, path, new WeightLoadOptions { Layout = "hf-blip2-vision" }));
        Assert.Equal(path, ex.FilePath);
        Assert.Equal("hf-blip2-vision", ex.Field);
        Assert.Contains($"loaded 2; missing {eva.state_dict().Count - 2}", ex.Message, StringComparison.Ordinal); // only ln_vision shares its name
        Assert.Contains("match layout lavis-qformer / lavis-eva-vit / hf-bert; this load used layout hf-blip2-vision", ex.Message, StringComparison.Ordinal);

        // The training checkpoint {"model": ...} without StripPrefix: the message says which prefix to strip.
        var pth = Path("lavis_blip2.pth");
        ex = Assert.Throws<ModelFormatException>(() => WeightLoader.Load(eva, pth, new WeightLoadOptions { Layout = "lavis-eva-vit" }));
        Assert.Contains("add StripPrefix = \"model.\"", ex.Message, StringComparison.Ordinal);

        // No layout at all for a GPT-2 file (Conv1D names, [in, out]) loaded into the ViT.
        using var vit = new VisionTransformer(Vit(Root.GetProperty("timm_vit").GetProperty("config")));
        ex = Assert.Throws<ModelFormatException>(() => WeightLoader.Load(vit, Path("gpt2_lm.safetensors")));
        Assert.Contains("match layout hf-gpt2; this load used MedVlp's own names (no layout)", ex.Message, StringComparison.Ordinal);
        Assert.Contains("unexpected ", ex.Message, StringComparison.Ordinal);
    }

    private static string Path(string file) => TestData.Golden("weights/parity/" + file);

    private static EvaVitConfig Eva(JsonElement v, double postNormEps) => new()
    {
        ImageSize = v.GetProperty("img").GetInt32(),
        PatchSize = v.GetProperty("patch").GetInt32(),
        Width = v.GetProperty("dim").GetInt32(),
        Depth = v.GetProperty("depth").GetInt32(),
        Heads = v.GetProperty("heads").GetInt32(),
        MlpRatio = v.GetProperty("mlp_ratio").GetDouble(),
        PostNormEps = postNormEps,
    };

    private static QFormerConfig QFormerOf(JsonElement c) => new()
    {
        VocabSize = c.GetProperty("vocab").GetInt32(),
        HiddenSize = c.GetProperty("hidden").GetInt32(),
        NumHiddenLayers = c.GetProperty("layers").GetInt32(),
        NumAttentionHeads = c.GetProperty("heads").GetInt32(),
        IntermediateSize = c.GetProperty("inter").GetInt32(),
        MaxPositionEmbeddings = c.GetProperty("positions").GetInt32(),
        EncoderWidth = c.GetProperty("encoder_width").GetInt32(),
        CrossAttentionFrequency = c.GetProperty("cross_freq").GetInt32(),
        QueryTokens = c.GetProperty("queries").GetInt32(),
    };

    private static VisionTransformerConfig Vit(JsonElement c) => new()
    {
        ImageSize = c.GetProperty("img").GetInt32(),
        PatchSize = c.GetProperty("patch").GetInt32(),
        Width = c.GetProperty("dim").GetInt32(),
        Depth = c.GetProperty("depth").GetInt32(),
        Heads = c.GetProperty("heads").GetInt32(),
        MlpRatio = c.GetProperty("mlp_ratio").GetDouble(),
        NumClasses = c.GetProperty("classes").GetInt32(),
    };

    private static Tensor Input(JsonElement values, JsonElement shape) =>
        tensor(values.EnumerateArray().Select(e => e.GetSingle()).ToArray(), shape.EnumerateArray().Select(e => e.GetInt64()).ToArray());

    private static Tensor Ids(JsonElement rows)
    {
        var data = rows.EnumerateArray().Select(r => r.EnumerateArray().Select(e => e.GetInt64()).ToArray()).ToArray();
        return tensor(data.SelectMany(r => r).ToArray(), [data.Length, data[0].Length]);
    }

    private static void AssertClose(JsonElement expected, Tensor actual) => WeightLayoutTests.AssertClose(expected, actual, Tolerance);

    /// <summary>A module with one named child.</summary>
    private sealed class Holder : nn.Module
    {
        public Holder(string name, nn.Module child)
            : base(nameof(Holder))
        {
            register_module(name, child);
        }
    }
}
