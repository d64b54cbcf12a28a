using MedVlp.Data;
using MedVlp.Modeling;
using MedVlp.Synthetic;
using MedVlp.Testing;
using MedVlp.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Tests;

/// <summary>The registry builds architectures by name and size, user architectures register and round-trip through
/// packages, and every registered architecture embeds the same from 8 threads as serially.</summary>
[Collection(nameof(TorchRandomState))]
public sealed class ModelRegistryTests
{
    /// <summary>A user architecture composed from parts: a 3D ViT and a BERT of their own sizes, clip3d's head.</summary>
    public sealed record TestClipConfig : ArchitectureConfig
    {
        public const string Name = "test-composed-clip";

        public override string Architecture => Name;

        public int Width { get; init; } = 16;

        public int VocabSize { get; init; } = 30522;

        public override void Validate() => ModelLimits.Check("width", Width, 8, ModelLimits.MaxWidth);

        public override int? TokenizerVocabularySize(string tokenizer) => tokenizer == Collator.DefaultTokenizerName ? VocabSize : null;
    }

    static ModelRegistryTests() => RegisterTestArchitecture();

    internal static void RegisterTestArchitecture() =>
        ModelRegistry.Register<TestClipConfig>(TestClipConfig.Name, "test: composed from a VolumeTransformer and a BertModel",
            () => new TestClipConfig(), () => new TestClipConfig { Width = 64 },
            (config, device) =>
            {
                var image = BackboneAdapters.From(new VolumeTransformer(new VolumeTransformerConfig { InputSize = 16, PatchSize = 8, Width = config.Width, Depth = 1, Heads = 2, MlpRatio = 2 }, device));
                var text = BackboneAdapters.From(new BertModel(TestModels.TinyConfig().Text with { HiddenSize = config.Width, VocabSize = config.VocabSize }, device), TextPooling.Cls);
                return new DualEncoderModel(config, image, text, new DualEncoderOptions { EmbeddingDim = 8, MaxTextTokens = 32 }, device);
            });

    [Fact]
    public void Clip3dIsRegisteredWithTinyAndFullSizesAndConfigsRoundTripWithTheirType()
    {
        Assert.Contains("clip3d", ModelRegistry.Names);
        foreach (var size in new[] { "tiny", "full" })
        {
            var config = ModelRegistry.Config("clip3d", size);
            var json = config.ToJson();
            Assert.StartsWith("{\n  \"type\": \"clip3d\"", json.Replace("\r", "", StringComparison.Ordinal), StringComparison.Ordinal);
            Assert.Equal(config, ArchitectureConfig.FromJson(json));
        }

        Assert.Equal(Clip3dConfig.Tiny(), ModelRegistry.Config("clip3d", "tiny"));
        using var full = ModelRegistry.Create("clip3d", "full", new ModelCreateOptions { Device = new Device(DeviceType.META) });
        Assert.True(full.CountParameters().Total > 200_000_000);
        Assert.Equal(full.CountParameters().Total, Clip3dConfig.Full().EstimateParameters());
        using (var tiny = ModelRegistry.Create("clip3d", "tiny", new ModelCreateOptions { Device = new Device(DeviceType.META) }))
        {
            Assert.Equal(tiny.CountParameters().Total, Clip3dConfig.Tiny().EstimateParameters());
        }

        var pooled = Clip3dConfig.Tiny() with { Text = Clip3dConfig.Tiny().Text with { AddPoolingLayer = true } };
        using (var withPooler = ModelRegistry.Create(pooled, new ModelCreateOptions { Device = new Device(DeviceType.META) }))
        {
            Assert.Equal(withPooler.CountParameters().Total, pooled.EstimateParameters());
        }
        Assert.Throws<KeyNotFoundException>(() => ModelRegistry.Create("clip3d", "huge"));
        Assert.Throws<KeyNotFoundException>(() => ModelRegistry.Create("no-such-architecture"));
        var bad = Assert.Throws<ArgumentException>(() => ArchitectureConfig.FromJson("{\"type\": \"nope\"}"));
        Assert.Equal("model.type", bad.ParamName);
    }

    [Fact]
    public void TheSameSeedGivesTheSameWeights()
    {
        using var a = ModelRegistry.Create("clip3d", "tiny", new ModelCreateOptions { Seed = 3 });
        using var b = ModelRegistry.Create("clip3d", "tiny", new ModelCreateOptions { Seed = 3 });
        using var scope = NewDisposeScope();
        var sb = b.state_dict();
        Assert.All(a.state_dict(), kv => Assert.True(kv.Value.equal(sb[kv.Key]).all().ToBoolean(), kv.Key));
    }

    [Fact]
    public void AUserArchitectureIsSavedAndLoadedThroughTheRegistry()
    {
        using var folder = TestData.NewTempFolder();
        var volume = TestModels.RandomVolume(3);
        float[] before;
        using (var module = ModelRegistry.Create(TestClipConfig.Name, "tiny", new ModelCreateOptions { Seed = 9, Freeze = FreezePolicy.Of("text_model") }))
        {
            using var model = VisionLanguageModel.FromModule(module, new Dictionary<string, TextTokenizer> { ["text"] = TestModels.Tokenizer }, "text", TestModels.Preprocessing(16));
            before = model.VolumeEncoder.Embed(volume);
            model.Save(folder.Path);
        }

        using var loaded = VisionLanguageModel.Load(folder.Path);
        Assert.Equal(TestClipConfig.Name, loaded.Architecture);
        Assert.Equal(new TestClipConfig(), loaded.Config);
        Assert.True(loaded.Module.IsFrozen("text_model"));
        Assert.Equal(before, loaded.VolumeEncoder.Embed(volume));
    }

    public static TheoryData<string> Architectures()
    {
        RegisterTestArchitecture();

        // Volume embedding of 3D volumes and texts: the 3D dual encoders (M-FLAG is a 2D dual encoder, LVM-Med image-only;
        // their 2D inputs are tested in TwoDimensionalInputTests).
        return [.. ModelRegistry.Names.Where(name =>
        {
            using var meta = ModelRegistry.Create(name, "tiny", new ModelCreateOptions { Device = new Device(DeviceType.META) });
            return meta is IDualEncoder { ImageInputShape.Count: 4 };
        })];
    }

    [Theory]
    [MemberData(nameof(Architectures))]
    public void ConcurrentEmbedFromEightThreadsEqualsSerial(string architecture)
    {
        var config = ModelRegistry.Config(architecture, "tiny");
        int size;
        using (var meta = ModelRegistry.Create(config, new ModelCreateOptions { Device = new Device(DeviceType.META) }))
        {
            size = (int)((IDualEncoder)meta).ImageInputShape[^1];
        }

        using var model = VisionLanguageModel.Create(config, TestModels.Tokenizer, TestModels.Preprocessing(size), seed: 4);
        var volumes = Enumerable.Range(0, 8).Select(n => n % 2 == 0 ? TestModels.RandomVolume(n) : SyntheticBrainDataset.GenerateCase(n, 1).Volume).ToArray();
        string[] texts = ["The ventricles are mildly enlarged.", "No atrophy.", "Hippocampal atrophy. The diagnosis is AD.", "MMSE 29."];
        var serialVolumes = volumes.Select(v => model.VolumeEncoder.Embed(v)).ToArray();
        var serialTexts = model.TextEncoder.Embed(texts);
        var results = new (float[][] Volumes, float[][] Texts)[8];
        using var start = new Barrier(8);
        var threads = Enumerable.Range(0, 8).Select(t => new Thread(() =>
        {
            start.SignalAndWait();
            var order = Enumerable.Range(0, volumes.Length).Select(n => (n + t) % volumes.Length).ToArray();
            var v = new float[volumes.Length][];
            foreach (var n in order)
            {
                v[n] = model.VolumeEncoder.Embed(volumes[n]);
            }

            results[t] = (v, model.TextEncoder.Embed(texts));
        })).ToArray();
        foreach (var thread in threads)
        {
            thread.Start();
        }

        foreach (var thread in threads)
        {
            thread.Join();
        }

        foreach (var (v, t) in results)
        {
            for (var n = 0; n < volumes.Length; n++)
            {
                Assert.Equal(serialVolumes[n], v[n]);
            }

            for (var n = 0; n < texts.Length; n++)
            {
                Assert.Equal(serialTexts[n], t[n]);
            }
        }
    }
}
