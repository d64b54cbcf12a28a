using System.Text.Json.Nodes;
using MedVlp.Data;
using MedVlp.Modeling;
using MedVlp.Packaging;
using MedVlp.Serialization;
using MedVlp.Testing;
using MedVlp.Text;

namespace MedVlp.Tests;

/// <summary>Model packages version 2: architecture dispatch, components, references, several tokenizers, checksums,
/// atomic replacement; and version-1 packages still load.</summary>
public sealed class ModelPackageV2Tests
{
    [Fact]
    public void ConfigNamesTheArchitectureComponentsTokenizersAndEveryFilesChecksum()
    {
        using var folder = TestData.NewTempFolder();
        using (var model = TestModels.TinyModel(seed: 2))
        {
            model.Save(folder.Path);
        }

        var config = JsonNode.Parse(File.ReadAllText(folder.File("config.json")))!;
        Assert.Equal(2, config["version"]!.GetValue<int>());
        Assert.Equal("clip3d", config["architecture"]!.GetValue<string>());
        Assert.Equal("clip3d", config["model"]!["type"]!.GetValue<string>());
        Assert.Equal(["vision_model", "text_model", "visual_projection", "text_projection", "logit_scale"],
            config["components"]!.AsArray().Select(c => c!["name"]!.GetValue<string>()));
        Assert.Equal(TestModels.Tokenizer.VocabularySize, config["tokenizers"]!["text"]!["vocabulary_size"]!.GetValue<int>());
        var files = config["files"]!.AsObject();
        Assert.Equal(["model.safetensors", "preprocessing.json", "vocab.txt"], files.Select(f => f.Key).Order(StringComparer.Ordinal));
        foreach (var (name, record) in files)
        {
            var (sha, size) = PackageFiles.Hash(folder.File(name), null);
            Assert.Equal(sha, record!["sha256"]!.GetValue<string>());
            Assert.Equal(size, record["size"]!.GetValue<long>());
        }

        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.GetDirectoryName(folder.Path)!, $".{Path.GetFileName(folder.Path)}.*"));
    }

    [Fact]
    public void AVersion1PackageStillLoads()
    {
        using var folder = TestData.NewTempFolder();
        var volume = TestModels.RandomVolume(8);
        float[] before;
        using (var model = TestModels.TinyModel(seed: 6))
        {
            before = model.VolumeEncoder.Embed(volume);
            model.Save(folder.Path);
        }

        // The config.json MedVlp 0.1 wrote (ModelPackageManifest of version 1): no type, no components, no checksums.
        var v2 = JsonNode.Parse(File.ReadAllText(folder.File("config.json")))!;
        var model1 = v2["model"]!.DeepClone().AsObject();
        model1.Remove("type");
        var v1 = new JsonObject
        {
            ["format"] = "medvlp.vision_language_model",
            ["version"] = 1,
            ["architecture"] = "dual_encoder",
            ["model"] = model1,
            ["tokenizer"] = new JsonObject { ["kind"] = "wordpiece", ["lower_case"] = true, ["file"] = "vocab.txt" },
            ["weights"] = "model.safetensors",
            ["preprocessing"] = "preprocessing.json",
        };
        File.WriteAllText(folder.File("config.json"), v1.ToJsonString());
        using var loaded = VisionLanguageModel.Load(folder.Path);
        Assert.Equal(TestModels.TinyConfig(), loaded.Config);
        Assert.Equal(before, loaded.VolumeEncoder.Embed(volume));

        // Repacking turns it into version 2 in place.
        loaded.Save(folder.Path);
        Assert.Equal(2, JsonNode.Parse(File.ReadAllText(folder.File("config.json")))!["version"]!.GetValue<int>());
        using var repacked = VisionLanguageModel.Load(folder.Path);
        Assert.Equal(before, repacked.VolumeEncoder.Embed(volume));
    }

    [Fact]
    public void AFrozenComponentIsReferencedAndTheTrainableOnlyPackageLoadsWithIt()
    {
        using var shared = TestData.NewTempFolder();
        var packagePath = Path.Combine(shared.Path, "finetuned");
        var componentPath = shared.File("text_model.safetensors");
        const string Report = "Hippocampal atrophy. The diagnosis is AD.";
        float[] before;
        using (var model = TestModels.TinyModel(seed: 12))
        {
            model.Module.Freeze("text_model");
            model.SaveComponent("text_model", componentPath);
            before = model.TextEncoder.Embed(Report);
            var noReference = Assert.Throws<ArgumentException>(() => model.Save(packagePath, new ModelSaveOptions { TrainableOnly = true }));
            Assert.Contains("text_model", noReference.Message, StringComparison.Ordinal);
            model.Save(packagePath, new ModelSaveOptions { TrainableOnly = true, ComponentReferences = new Dictionary<string, string> { ["text_model"] = componentPath } });
        }

        var header = Safetensors.ReadHeader(Path.Combine(packagePath, "model.safetensors"));
        Assert.DoesNotContain(header.Entries, e => e.Name.StartsWith("text_model.", StringComparison.Ordinal));
        Assert.Contains(Safetensors.ReadHeader(componentPath).Entries, e => e.Name == "embeddings.word_embeddings.weight");
        var reference = JsonNode.Parse(File.ReadAllText(Path.Combine(packagePath, "config.json")))!["components"]!.AsArray().Single(c => c!["name"]!.GetValue<string>() == "text_model")!;
        Assert.Equal("../text_model.safetensors", reference["reference"]!["path"]!.GetValue<string>());
        Assert.True(reference["frozen"]!.GetValue<bool>());

        using (var loaded = VisionLanguageModel.Load(packagePath))
        {
            Assert.True(loaded.Module.IsFrozen("text_model"));
            Assert.Equal(before, loaded.TextEncoder.Embed(Report));
        }

        // A referenced file that changed is named.
        var bytes = File.ReadAllBytes(componentPath);
        bytes[^1] ^= 0x40;
        File.WriteAllBytes(componentPath, bytes);
        var ex = Assert.Throws<ModelFormatException>(() => VisionLanguageModel.Load(packagePath));
        Assert.Equal(Path.Combine(packagePath, "../text_model.safetensors"), ex.FilePath);
        Assert.Equal("sha256", ex.Field);
    }

    [Fact]
    public void SeveralTokenizersAreStoredByNameAndTheCollatorUsesTheOneAsked()
    {
        using var folder = TestData.NewTempFolder();
        var tokenizers = new Dictionary<string, TextTokenizer> { ["text"] = TestModels.Tokenizer, ["qformer"] = TestModels.SmallTokenizer() };
        using (var module = ModelRegistry.Create(TestModels.TinyConfig(), new ModelCreateOptions { Seed = 1 }))
        using (var model = VisionLanguageModel.FromModule(module, tokenizers, "text", TestModels.Preprocessing(16)))
        {
            model.Save(folder.Path);
        }

        Assert.True(File.Exists(folder.File("tokenizers/qformer/vocab.txt")));
        using var loaded = VisionLanguageModel.Load(folder.Path);
        Assert.Equal(["qformer", "text"], loaded.Tokenizers.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(TestModels.SmallTokenizer().VocabularySize, loaded.Tokenizers["qformer"].VocabularySize);
        using var right = loaded.Collator.CollateTexts(["the ventricles", "the ventricles are enlarged"], new TextCollation { Tokenizer = "qformer", MaxTokens = 16 });
        using var left = loaded.Collator.CollateTexts(["the ventricles", "the ventricles are enlarged"], new TextCollation { Tokenizer = "qformer", MaxTokens = 16, Padding = PaddingSide.Left });
        var small = TestModels.SmallTokenizer();
        long[] first = [.. small.Encode("the ventricles", 16).Select(i => (long)i)];
        Assert.Equal(first, right.InputIds[0].data<long>().ToArray()[..first.Length]);
        Assert.Equal(first, left.InputIds[0].data<long>().ToArray()[^first.Length..]);
        Assert.Equal(0, left.AttentionMask[0, 0].item<long>());
        Assert.Equal(1, right.AttentionMask[0, 0].item<long>());
        Assert.Throws<ArgumentException>(() => loaded.Collator.CollateTexts(["x"], new TextCollation { Tokenizer = "llm" }));
    }

    [Fact]
    public void TheCollatorKeepsEveryFrameAsAChannelAndStacksTwoDimensionalImages()
    {
        var data = Enumerable.Range(0, 2 * 4 * 3 * 2).Select(i => (float)i).ToArray();
        var twoFrames = new MedVlp.Volumes.Volume(data, new MedVlp.Volumes.VolumeShape(2, 3, 4), null, [2]);
        using var volumes = Collator.CollateVolumes([twoFrames, twoFrames]);
        Assert.Equal([2L, 2, 4, 3, 2], volumes.shape);
        Assert.Equal(data[24], volumes[0, 1, 0, 0, 0].item<float>());
        var slice = new MedVlp.Volumes.Volume([.. Enumerable.Range(0, 6).Select(i => (float)i)], new MedVlp.Volumes.VolumeShape(3, 2, 1));
        using var images = Collator.CollateImages([slice, slice, slice]);
        Assert.Equal([3L, 1, 2, 3], images.shape);
        Assert.Equal(5f, images[2, 0, 1, 2].item<float>());
        Assert.Throws<ArgumentException>(() => Collator.CollateImages([twoFrames]));
        Assert.Throws<ArgumentException>(() => Collator.CollateVolumes([twoFrames], [1, 4, 3, 2]));
    }

    [Fact]
    public void SaveReplacesAPackageButNeverAnotherFolder()
    {
        using var folder = TestData.NewTempFolder();
        File.WriteAllText(folder.File("notes.txt"), "mine");
        using var model = TestModels.TinyModel();
        var ex = Assert.Throws<IOException>(() => model.Save(folder.Path));
        Assert.Contains("not a MedVlp model package", ex.Message, StringComparison.Ordinal);
        Assert.True(File.Exists(folder.File("notes.txt")));
        var target = folder.File("model");
        model.Save(target);
        model.Save(target);
        using var loaded = VisionLanguageModel.Load(target);
        Assert.Equal(["model", "notes.txt"], Directory.EnumerateFileSystemEntries(folder.Path).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }
}
