using System.Text.Json.Nodes;
using MedVlp.Serialization;
using MedVlp.Synthetic;
using MedVlp.Testing;

namespace MedVlp.Tests;

public sealed class ModelPackageTests
{
    [Fact]
    public void SaveAndLoadGiveTheSameEmbeddings()
    {
        using var folder = TestData.NewTempFolder();
        var volumes = new[] { TestModels.RandomVolume(1), SyntheticBrainDataset.GenerateCase(2, 1).Volume };
        const string Report = "74-year-old female patient. MMSE 29. The diagnosis is Not demented.";
        float[][] before;
        float[] textBefore;
        using (var model = TestModels.TinyModel(seed: 3))
        {
            before = model.VolumeEncoder.Embed(volumes);
            textBefore = model.TextEncoder.Embed(Report);
            model.Save(folder.Path);
        }

        foreach (var file in new[] { "config.json", "model.safetensors", "vocab.txt", "preprocessing.json" })
        {
            Assert.True(File.Exists(folder.File(file)), file);
        }

        using var loaded = VisionLanguageModel.Load(folder.Path);
        var after = loaded.VolumeEncoder.Embed(volumes);
        for (var n = 0; n < volumes.Length; n++)
        {
            AssertClose(before[n], after[n], 1e-6);
        }

        AssertClose(textBefore, loaded.TextEncoder.Embed(Report), 1e-6);
        Assert.Equal(loaded.Preprocessing.ToJson(), TestModels.Preprocessing(16).ToJson());
        Assert.Equal(TestModels.TinyConfig(), loaded.Config);
    }

    [Fact]
    public void EmbeddingsAreUnitLengthAndTheModelsOwnPreprocessingIsApplied()
    {
        using var model = TestModels.TinyModel();
        var volume = TestModels.RandomVolume(5, 30, 22, 17);
        var embedding = model.VolumeEncoder.Embed(volume);
        Assert.Equal(8, embedding.Length);
        Assert.Equal(1.0, Math.Sqrt(embedding.Sum(v => (double)v * v)), 5);
        // Intensity scale is removed by the stored min-max step: a rescaled volume embeds the same.
        var scaled = volume.WithData(volume.Data.ToArray().Select(v => (v * 3) + 7).ToArray());
        AssertClose(embedding, model.VolumeEncoder.Embed(scaled), 1e-5);
        var text = model.TextEncoder.Embed("The ventricles are mildly enlarged.");
        Assert.Equal(1.0, Math.Sqrt(text.Sum(v => (double)v * v)), 5);
    }

    [Fact]
    public void BrokenPackagesGiveClearErrors()
    {
        using var folder = TestData.NewTempFolder();
        using (var model = TestModels.TinyModel())
        {
            model.Save(folder.Path);
        }

        // A config whose architecture disagrees with the weights.
        var configPath = folder.File("config.json");
        var original = File.ReadAllText(configPath);
        var node = JsonNode.Parse(original)!;
        node["model"]!["embedding_dim"] = 12;
        File.WriteAllText(configPath, node.ToJsonString());
        var ex = Assert.Throws<ModelFormatException>(() => VisionLanguageModel.Load(folder.Path));
        Assert.Contains("_projection.weight", ex.Message, StringComparison.Ordinal);
        Assert.Contains("does not match", ex.Message, StringComparison.Ordinal);

        // A wrong format name.
        node = JsonNode.Parse(original)!;
        node["format"] = "something.else";
        File.WriteAllText(configPath, node.ToJsonString());
        ex = Assert.Throws<ModelFormatException>(() => VisionLanguageModel.Load(folder.Path));
        Assert.Equal("format", ex.Field);

        // Truncated weights.
        File.WriteAllText(configPath, original);
        var weights = folder.File("model.safetensors");
        var bytes = File.ReadAllBytes(weights);
        File.WriteAllBytes(weights, bytes[..^10]);
        ex = Assert.Throws<ModelFormatException>(() => VisionLanguageModel.Load(folder.Path));
        Assert.Equal(weights, ex.FilePath);

        // Not a package at all.
        Assert.Throws<ModelFormatException>(() => VisionLanguageModel.Load(Path.GetTempPath()));
    }

    private static void AssertClose(float[] expected, float[] actual, double tolerance)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var n = 0; n < expected.Length; n++)
        {
            Assert.True(Math.Abs(expected[n] - actual[n]) <= tolerance, $"element {n}: {expected[n]} vs {actual[n]}");
        }
    }
}
