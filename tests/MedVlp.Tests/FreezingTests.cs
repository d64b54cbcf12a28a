using MedVlp.Losses;
using MedVlp.Modeling;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace MedVlp.Tests;

/// <summary>Freezing as a policy: frozen weights never change, stay in eval mode, never reach the optimizer, and still
/// pass gradients to what trains in front of them. Plain TorchSharp optimizer loops (not the trainer).</summary>
public sealed class FreezingTests
{
    /// <summary>MedBLIP's pattern: a trainable stem in front of a frozen encoder, a trainable head behind it.</summary>
    private sealed class StemBodyHead : CompositeModel
    {
#pragma warning disable IDE1006, SA1300
        private readonly Conv3d stem;
        private readonly VolumeTransformer body;
        private readonly Linear head;
#pragma warning restore IDE1006, SA1300

        public StemBodyHead(VolumeTransformerConfig config)
            : base(nameof(StemBodyHead))
        {
            stem = Conv3d(1, 1, 3, padding: 1);
            body = new VolumeTransformer(config);
            head = Linear(config.Width, 2);
            RegisterComponents();
            Config = TestModels.TinyConfig();
        }

        public override ArchitectureConfig Config { get; }

        public Tensor forward(Tensor x) => head.forward(body.forward(stem.forward(x)));

        public Conv3d Stem => stem;
    }

    [Fact]
    public void FrozenPartKeepsItsWeightsAndEvalModeWhileGradientsReachThePartInFrontOfIt()
    {
        random.manual_seed(11);
        var config = new VolumeTransformerConfig { InputSize = 16, PatchSize = 8, Width = 16, Depth = 1, Heads = 2, MlpRatio = 2 };
        using var model = new StemBodyHead(config);
        model.Freeze("body");
        var before = Snapshot(model);
        var trainable = model.TrainableParameters().ToArray();
        Assert.DoesNotContain(trainable, p => p.Name.StartsWith("body.", StringComparison.Ordinal));
        Assert.Contains(trainable, p => p.Name.StartsWith("stem.", StringComparison.Ordinal));
        var counts = model.CountParameters();
        Assert.Equal(counts.Total, counts.Trainable + counts.Frozen);
        Assert.Equal(model.named_parameters().Where(p => p.name.StartsWith("body.", StringComparison.Ordinal)).Sum(p => p.parameter.numel()), counts.Frozen);

        using var optimizer = optim.AdamW(trainable.Select(p => p.Parameter), lr: 1e-2);
        model.train();
        Assert.True(model.training);
        Assert.False(model.named_children().Single(c => c.name == "body").module.training);
        var stemGradient = 0.0;
        for (var step = 0; step < 3; step++)
        {
            using var scope = NewDisposeScope();
            optimizer.zero_grad();
            var x = randn([4, 1, 16, 16, 16]);
            var target = tensor(new long[] { 0, 1, 0, 1 });
            var loss = functional.cross_entropy(model.forward(x), target);
            loss.backward();
            stemGradient = model.Stem.weight!.grad!.abs().sum().ToDouble();
            Assert.All(model.named_parameters().Where(p => p.name.StartsWith("body.", StringComparison.Ordinal)), p => Assert.Null(p.parameter.grad));
            optimizer.step();
        }

        Assert.True(stemGradient > 0, "no gradient reached the stem through the frozen body");
        var after = Snapshot(model);
        foreach (var (name, bytes) in before)
        {
            if (name.StartsWith("body.", StringComparison.Ordinal))
            {
                Assert.True(bytes.AsSpan().SequenceEqual(after[name]), $"frozen {name} changed");
            }
        }

        Assert.False(before["stem.weight"].AsSpan().SequenceEqual(after["stem.weight"]), "the stem did not train");
        Assert.False(before["head.weight"].AsSpan().SequenceEqual(after["head.weight"]), "the head did not train");

        model.Unfreeze("body");
        Assert.True(model.named_children().Single(c => c.name == "body").module.training);
        Assert.Equal(0, model.CountParameters().Frozen);
    }

    [Fact]
    public void Clip3dWithAFrozenTextEncoderTrainsTheRestAndCachesFrozenOutputs()
    {
        using var vlm = TestModels.TinyModel(seed: 5);
        var model = (DualEncoderModel)vlm.Module;
        model.Apply(FreezePolicy.Of(DualEncoderModel.TextComponent));
        Assert.Equal([DualEncoderModel.TextComponent], model.FrozenComponents);
        var before = Snapshot(model);
        using var loss = new ClipLoss();
        using var optimizer = optim.AdamW(model.TrainableParameters().Select(p => p.Parameter), lr: 1e-2);
        var volumes = Enumerable.Range(0, 4).Select(n => TestModels.RandomVolume(n)).ToArray();
        string[] texts = ["the ventricles are enlarged.", "no atrophy.", "mild cognitive impairment.", "the diagnosis is alzheimer."];
        model.train();
        Assert.False(model.named_children().Single(c => c.name == DualEncoderModel.TextComponent).module.training);
        for (var step = 0; step < 3; step++)
        {
            using var scope = NewDisposeScope();
            optimizer.zero_grad();
            var images = vlm.PrepareVolumes(volumes);
            var (ids, mask) = vlm.PrepareTexts(texts);
            var output = loss.forward(new ContrastiveInput(model.EncodeImages(images), model.EncodeTexts(ids, mask), model.LogitScale()));
            output.Total.backward();
            optimizer.step();
        }

        model.eval();
        var after = Snapshot(model);
        Assert.All(before.Where(kv => kv.Key.StartsWith("text_model.", StringComparison.Ordinal)), kv => Assert.True(kv.Value.AsSpan().SequenceEqual(after[kv.Key]), kv.Key));
        Assert.False(before["vision_model.patch_embed.proj.weight"].AsSpan().SequenceEqual(after["vision_model.patch_embed.proj.weight"]));
        Assert.False(before["text_projection.weight"].AsSpan().SequenceEqual(after["text_projection.weight"]));

        // The cache of the frozen encoder's outputs gives the same embeddings and fills once per distinct sequence.
        var uncached = vlm.TextEncoder.Embed(texts);
        model.CacheFrozenTextOutputs = true;
        var cached = vlm.TextEncoder.Embed(texts);
        var again = vlm.TextEncoder.Embed([texts[1], texts[0]]);
        Assert.Equal(texts.Length, model.CachedTextOutputs);
        for (var n = 0; n < texts.Length; n++)
        {
            Assert.Equal(uncached[n], cached[n]);
        }

        Assert.Equal(cached[1], again[0]);
        Assert.Equal(cached[0], again[1]);
    }

    [Fact]
    public void FreezingAnUnknownComponentNamesTheComponents()
    {
        using var model = ModelRegistry.Create("clip3d", "tiny", new ModelCreateOptions { Device = new Device(DeviceType.META) });
        var ex = Assert.Throws<ArgumentException>(() => model.Freeze("language_model"));
        Assert.Contains("vision_model, text_model, visual_projection, text_projection, logit_scale", ex.Message, StringComparison.Ordinal);
        model.Freeze("logit_scale");
        Assert.Equal(1, model.CountParameters().Frozen);
    }

    private static Dictionary<string, byte[]> Snapshot(nn.Module model)
    {
        using var scope = NewDisposeScope();
        return model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().cpu().contiguous().bytes.ToArray(), StringComparer.Ordinal);
    }
}
