using System.Text.Json;
using MedVlp.Architectures.MFlag;
using MedVlp.Backbones;
using MedVlp.Backbones.Onnx;
using MedVlp.Data;
using MedVlp.Modeling;
using MedVlp.Serialization;
using MedVlp.Testing;
using MedVlp.Text;
using MedVlp.Training;
using MedVlp.Volumes;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Tests.Architectures;

/// <summary>
/// M-FLAG's frozen language model from real files: all-MiniLM-L6-v2 (6 layers x 384, 12 heads) as an ONNX export and as a
/// Hugging Face folder, read by <see cref="PretrainedBert"/> and used through the <c>mflag</c> recipe's <c>text_model</c>.
/// </summary>
[Collection(nameof(TorchRandomState))]
public sealed class MFlagTextModelTests
{
    private static string OnnxPath => TestData.File("minilm/model.onnx");

    [Fact]
    public void OnnxExportIsReadCheckedAgainstOnnxRuntimeAndItsHeadCountFound()
    {
        using var text = PretrainedBert.Load(OnnxPath);
        var c = text.Config;
        Assert.Equal("onnx", text.Format);
        Assert.Equal((30522, 384, 6, 12, 1536, 512, 2), (c.VocabSize, c.HiddenSize, c.NumHiddenLayers, c.NumAttentionHeads, c.IntermediateSize, c.MaxPositionEmbeddings, c.TypeVocabSize));
        Assert.True(c.AddPoolingLayer);
        Assert.Equal(30522, text.Tokenizer.VocabularySize);
        // Nothing states the 12 heads (the weights cannot): the ONNX Runtime check rejected 6 (width 64) and found 12.
        Assert.NotNull(text.OnnxMaxDifference);
        Assert.True(text.OnnxMaxDifference <= 1e-4, $"largest difference to ONNX Runtime {text.OnnxMaxDifference}");
    }

    [Fact]
    public void TheMFlagRecipeTrainsThroughTheTrainerWithMiniLmFrozenByteForByte()
    {
        var recipe = TrainingRecipe.Resolve("mflag") with { TextModel = OnnxPath, Steps = 3, Data = new DataSettings { BatchSize = 4 } };
        recipe.Validate();
        using var model = recipe.CreateModel((TextTokenizer?)null, seed: 7);
        var m = (MFlagModel)model.Module;
        Assert.Equal(384, m.Sizes.Text.HiddenSize);
        Assert.Equal(384, m.state_dict()["proj_t.0.weight"].shape[1]); // proj_t's first Linear takes MiniLM's width
        Assert.Equal(30522, model.Tokenizer.VocabularySize);
        var minilmTokenizer = WordPieceTextTokenizer.FromVocabularyFile(TestData.File("minilm/vocab.txt"));
        Assert.Equal(minilmTokenizer.Encode("no acute cardiopulmonary abnormality", 32), model.Tokenizer.Encode("no acute cardiopulmonary abnormality", 32));

        var textBefore = m.TextEncoder.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().cpu().bytes.ToArray());
        var imageBefore = m.ImageEncoder.state_dict().First(kv => kv.Key.EndsWith(".weight", StringComparison.Ordinal)).Value.detach().clone();
        using var objective = recipe.CreateObjective(model);
        string[] reports = ["normal study.", "small left pleural effusion.", "cardiomegaly.", "normal study.", "no pneumothorax.", "cardiomegaly.", "normal study.", "small left pleural effusion."];
        var random = new Random(3);
        var images = reports.Select(_ => new Volume([.. Enumerable.Range(0, 64 * 64).Select(_ => (float)random.NextDouble())], new VolumeShape(64, 64, 1))).ToArray();
        var data = new AugmentedTrainingData(images, reports, null, 1, v => Collator.CollateImages(v), new TrainingBatchCollator(model.Tokenizer, recipe.MaxTextTokens(model)), 4, seed: 3);
        using (var trainer = new Trainer(objective, recipe.CreateTrainerOptions(null)))
        {
            var summary = trainer.Fit(data);
            Assert.Equal(3, summary.StepsDone);
            Assert.DoesNotContain(trainer.Parameters.All, p => m.TextEncoder.parameters().Any(t => ReferenceEquals(t, p)));
        }

        // Frozen: requires_grad false, eval mode, no gradient, every byte as loaded; the image side moved.
        Assert.All(m.TextEncoder.parameters(), p => Assert.False(p.requires_grad));
        Assert.All(m.TextEncoder.parameters(), p => Assert.Null(p.grad));
        Assert.False(m.TextEncoder.training);
        foreach (var (key, value) in m.TextEncoder.state_dict())
        {
            Assert.True(textBefore[key].AsSpan().SequenceEqual(value.detach().cpu().bytes), $"lm_model.{key} changed");
        }

        using (var imageAfter = m.ImageEncoder.state_dict().First(kv => kv.Key.EndsWith(".weight", StringComparison.Ordinal)).Value.detach())
        {
            Assert.False(imageBefore.allclose(imageAfter, rtol: 0, atol: 0), "the image encoder should have trained");
        }

        imageBefore.Dispose();
        // Cached once per distinct report (5 distinct texts), under no_grad.
        Assert.Equal(reports.Distinct().Count(), m.CachedTextOutputs);

        // The text tower is the real MiniLM: its CLS state equals ONNX Runtime's.
        var batch = model.Tokenizer.EncodeBatch(["mild cardiomegaly without edema", "normal study."], 32);
        using var ids = tensor(batch.Ids.ToArray(), [batch.BatchSize, batch.SequenceLength]);
        using var mask = tensor(batch.AttentionMask.ToArray(), [batch.BatchSize, batch.SequenceLength]);
        using var onnx = new OnnxTextBackbone(OnnxPath);
        using var reference = onnx.Forward(ids, mask);
        using var cls = m.EncodeTextCls(ids, mask);
        using var expected = reference[.., 0];
        Assert.True(cls.allclose(expected, rtol: 0, atol: 1e-4), $"CLS differs from ONNX Runtime by {(cls - expected).abs().max().item<float>()}");
    }

    [Fact]
    public void FullSizeTrainableShareWithBertBaseAndWithMiniLm()
    {
        // Built on the meta device (no memory): ResNet-50 + proj_v train; the language model is frozen; proj_t takes its width.
        using var text = PretrainedBert.Load(OnnxPath, new PretrainedBertOptions { VerifyOnnx = false, NumAttentionHeads = 12 });
        var recipe = TrainingRecipe.Resolve("mflag-full");
        var meta = new Device(DeviceType.META);
        var plugin = recipe.Plugin!;
        foreach (var (config, total, trainable) in new[]
        {
            ((MFlagConfig)plugin.ModelConfig(ModelRegistry.Full, 30522), 142_966_080L, 33_483_840L),
            ((MFlagConfig)plugin.ModelConfig(ModelRegistry.Full, text), 55_410_624L, 32_697_408L),
        })
        {
            using var model = (MFlagModel)ModelRegistry.Create(config, new ModelCreateOptions { Device = meta, Freeze = MFlagModel.DefaultFreeze });
            var counts = model.CountParameters();
            Assert.Equal((total, trainable), (counts.Total, counts.Trainable));
        }
    }

    [Fact]
    public void BackboneFeaturesAreTheNormalisedPooledResNetFeature()
    {
        // What `medvlp probe --features backbone` embeds: the encoder M-FLAG keeps for downstream tasks, not proj_v.
        using var model = TrainingRecipe.Resolve("mflag").CreateModel(WordPieceTextTokenizer.FromVocabularyFile(TestData.File("bert/vocab.txt")), seed: 3);
        var m = (MFlagModel)model.Module;
        m.eval();
        var random = new Random(5);
        var volumes = Enumerable.Range(0, 3).Select(_ => new Volume([.. Enumerable.Range(0, 40 * 50).Select(_ => (float)random.NextDouble())], new VolumeShape(40, 50, 1))).ToArray();
        var features = model.VolumeEncoder.EmbedBackboneFeatures(volumes);
        Assert.Equal(m.FeatureDim, features[0].Length);
        Assert.Equal(128, m.FeatureDim);
        using var images = Collator.CollateImages([.. volumes.Select(v => model.Preprocessing.Apply(v))]);
        using (no_grad())
        {
            using var expected = nn.functional.normalize(m.ImageEncoder.forward(images), dim: -1);
            for (var n = 0; n < volumes.Length; n++)
            {
                var row = expected[n].data<float>().ToArray();
                Assert.True(row.Zip(features[n]).All(p => Math.Abs(p.First - p.Second) <= 1e-5), $"row {n}");
            }
        }

        Assert.NotEqual(m.EmbeddingDim, m.FeatureDim); // not the shared-space embedding
        using var clip = TrainingRecipe.Resolve("clip3d-test").CreateModel(WordPieceTextTokenizer.FromVocabularyFile(TestData.File("bert/vocab.txt")));
        Assert.Throws<NotSupportedException>(() => clip.VolumeEncoder.EmbedBackboneFeatures(volumes));
    }

    [Fact]
    public void HuggingFaceFolderLoadsTheSameWeightsAsTheOnnxExport()
    {
        using var temp = TestData.NewTempFolder();
        var folder = temp.File("minilm-hf");
        Directory.CreateDirectory(folder);
        var initializers = OnnxInitializers.Load(OnnxPath);
        try
        {
            Safetensors.Save(Path.Combine(folder, "model.safetensors"), initializers);
        }
        finally
        {
            foreach (var t in initializers.Values)
            {
                t.Dispose();
            }
        }

        File.Copy(TestData.File("minilm/vocab.txt"), Path.Combine(folder, "vocab.txt"));
        File.WriteAllText(Path.Combine(folder, "tokenizer_config.json"), """{"do_lower_case": true, "model_max_length": 512}""");
        File.WriteAllText(Path.Combine(folder, "config.json"), """
            {"architectures": ["BertModel"], "model_type": "bert", "hidden_act": "gelu", "vocab_size": 30522, "hidden_size": 384,
             "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536, "max_position_embeddings": 512,
             "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}
            """);
        using var fromFolder = PretrainedBert.Load(folder);
        using var fromOnnx = PretrainedBert.Load(OnnxPath);
        Assert.Equal("safetensors", fromFolder.Format);
        Assert.Null(fromFolder.OnnxMaxDifference);
        Assert.Equal(fromOnnx.Config, fromFolder.Config);
        using var a = fromFolder.CreateModel();
        using var b = fromOnnx.CreateModel();
        foreach (var (key, value) in a.state_dict())
        {
            Assert.True(value.allclose(b.state_dict()[key], rtol: 0, atol: 0), key);
        }

        // The recipe takes the folder too.
        using var model = (TrainingRecipe.Resolve("mflag") with { TextModel = folder }).CreateModel((TextTokenizer?)null);
        Assert.Equal(384, ((MFlagModel)model.Module).Sizes.Text.HiddenSize);
    }

    [Fact]
    public void BadTextModelsFailNamingTheFileAndField()
    {
        using var temp = TestData.NewTempFolder();

        // A folder without config.json.
        var empty = temp.File("no-config");
        Directory.CreateDirectory(empty);
        File.WriteAllText(Path.Combine(empty, "pytorch_model.bin"), "");
        var missing = Assert.Throws<FileNotFoundException>(() => PretrainedBert.Load(empty));
        Assert.Contains("config.json", missing.Message, StringComparison.Ordinal);

        // A config.json beside the ONNX file that states the wrong head count: the ONNX Runtime check catches it.
        var wrong = temp.File("wrong-heads");
        Directory.CreateDirectory(wrong);
        File.CreateSymbolicLink(Path.Combine(wrong, "model.onnx"), OnnxPath);
        File.Copy(TestData.File("minilm/vocab.txt"), Path.Combine(wrong, "vocab.txt"));
        File.WriteAllText(Path.Combine(wrong, "config.json"), """{"model_type": "bert", "hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 6, "intermediate_size": 1536}""");
        var ex = Assert.Throws<ModelFormatException>(() => PretrainedBert.Load(Path.Combine(wrong, "model.onnx")));
        Assert.Equal("graph", ex.Field);
        Assert.Contains("does not reproduce ONNX Runtime", ex.Message, StringComparison.Ordinal);

        // Not BERT.
        File.WriteAllText(Path.Combine(wrong, "config.json"), """{"model_type": "gpt2", "n_embd": 384}""");
        Assert.Equal("model_type", Assert.Throws<ModelFormatException>(() => PretrainedBert.Load(Path.Combine(wrong, "model.onnx"))).Field);

        // No vocabulary beside the model.
        var bare = temp.File("bare");
        Directory.CreateDirectory(bare);
        File.CreateSymbolicLink(Path.Combine(bare, "model.onnx"), OnnxPath);
        Assert.Contains("vocab.txt", Assert.Throws<FileNotFoundException>(() => PretrainedBert.Load(Path.Combine(bare, "model.onnx"))).Message, StringComparison.Ordinal);

        // An architecture without a frozen language model.
        var clip = TrainingRecipe.Resolve("clip3d-test") with { TextModel = OnnxPath };
        Assert.Equal("text_model", Assert.Throws<RecipeFormatException>(() => clip.Validate()).Field);
        var recipeFile = temp.File("bad.json");
        File.WriteAllText(recipeFile, JsonSerializer.Serialize(new { architecture = "lvmmed", size = "tiny", objectives = new[] { new { name = "graph_matching", loss = "graph_matching" } }, text_model = "x.onnx" }));
        Assert.Equal("text_model", Assert.Throws<RecipeFormatException>(() => TrainingRecipe.Load(recipeFile)).Field);
    }
}
