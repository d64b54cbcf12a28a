using MedVlp.Architectures.Colipri;
using MedVlp.Modeling;
using MedVlp.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Tests.Colipri;

[Collection(nameof(TorchRandomState))] // builds randomly initialised modules from libtorch's global generator
public sealed class ColipriRegistryTests
{
    [Fact]
    public void RegistryBuildsBothSizesWhoseParameterCountsTheConfigPredicts()
    {
        Assert.Contains("colipri", ModelRegistry.Names);
        using (var full = ModelRegistry.Create("colipri", ModelRegistry.Full, new ModelCreateOptions { Device = META }))
        {
            Assert.IsType<ColipriModel>(full);
            Assert.Equal(full.CountParameters().Total, full.Config.EstimateParameters());
            Assert.Equal(ColipriConfig.Full(), full.Config);
        }

        using var tiny = ModelRegistry.Create("colipri", ModelRegistry.Tiny);
        Assert.Equal(tiny.CountParameters().Total, tiny.Config.EstimateParameters());
        var trimmed = ColipriConfig.Tiny() with { ReportVocabulary = [100, 0, 101, 102, 2045, 2003] };
        using var small = ModelRegistry.Create(trimmed);
        Assert.Equal(small.CountParameters().Total, trimmed.EstimateParameters());
        Assert.Equal(tiny.CountParameters().Total - ((30522 - 6) * (2L * 64 + 1)), small.CountParameters().Total);
    }

    [Fact]
    public void ConfigRoundTripsThroughJsonAndNamesTheBadField()
    {
        var config = ColipriConfig.Tiny() with { ReportVocabulary = [100, 0, 101, 102], Contrastive = ColipriContrastive.SigLip };
        var json = config.ToJson();
        Assert.Contains("\"type\": \"colipri\"", json, StringComparison.Ordinal);
        Assert.Contains("\"report_vocabulary\"", json, StringComparison.Ordinal);
        Assert.DoesNotContain("grid_size", json, StringComparison.Ordinal);
        var back = (ColipriConfig)ArchitectureConfig.FromJson(json);
        Assert.Equal(json, back.ToJson());
        Assert.Equal("decoder_heads", Assert.Throws<ArgumentException>((config with { DecoderHeads = 7 }).Validate).ParamName);
        Assert.Equal("report_vocabulary", Assert.Throws<ArgumentException>((config with { ReportVocabulary = [100, 100] }).Validate).ParamName);
        Assert.Equal("report_vocabulary", Assert.Throws<ArgumentException>((config with { ReportVocabulary = [100, 40000] }).Validate).ParamName);
        Assert.Equal("encoder", Assert.Throws<ArgumentException>((config with { Encoder = config.Encoder with { Heads = 5 } }).Validate).ParamName);
        Assert.Equal("text.num_hidden_layers", Assert.Throws<ArgumentException>((config with { Text = config.Text with { NumHiddenLayers = 100000 } }).Validate).ParamName);
    }

    [Fact]
    public void MaxPoolingIsTheChannelMaximumOverTheProjectedTokensAndHasNoPoolerWeights()
    {
        Assert.Equal(ImagePooling.Max, ColipriConfig.Tiny().ImagePooling);
        Assert.Equal(ImagePooling.Attention, ColipriConfig.Full().ImagePooling);
        var config = ColipriParityTests.TinyConfig() with { ImagePooling = ImagePooling.Max };
        random.manual_seed(11);
        using var model = new ColipriModel(config);
        using var attention = new ColipriModel(ColipriParityTests.TinyConfig());
        Assert.DoesNotContain(model.state_dict().Keys, k => k.StartsWith("pooler.", StringComparison.Ordinal));
        Assert.Contains(attention.state_dict().Keys, k => k.StartsWith("pooler.", StringComparison.Ordinal));
        Assert.Equal(model.CountParameters().Total, config.EstimateParameters());
        Assert.Equal((4L * 16 * 16) + (5 * 16), attention.CountParameters().Total - model.CountParameters().Total);

        using var scope = NewDisposeScope();
        var volumes = randn(new long[] { 3, 1, 16, 16, 16 });
        var map = model.EncodeImage(volumes, pool: false, normalize: false); // B x E x D' x H' x W'
        var expected = map.flatten(2).max(2).values;
        var unnormalised = model.EncodeImage(volumes, normalize: false);
        Assert.Equal(0, (unnormalised - expected).abs().max().ToDouble(), 6);
        var pooled = model.EncodeImage(volumes);
        Assert.Equal(0, (pooled - nn.functional.normalize(expected, dim: -1)).abs().max().ToDouble(), 6);

        // The gradient reaches only each channel's maximal token, as torch.amax's does.
        var tokens = randn(new long[] { 2, 5, 16 }).requires_grad_();
        model.Pool(tokens, normalize: false).sum().backward();
        var grad = tokens.grad!;
        Assert.Equal(2 * 16, grad.sum().ToDouble(), 6);
        Assert.Equal(tokens.argmax(1).data<long>().ToArray(), grad.argmax(1).data<long>().ToArray());

        var json = (ColipriConfig.Tiny() with { ReportVocabulary = [100, 0] }).ToJson();
        Assert.Contains("\"image_pooling\": \"max\"", json, StringComparison.Ordinal);
        Assert.Equal(ImagePooling.Max, ((ColipriConfig)ArchitectureConfig.FromJson(json)).ImagePooling);
        Assert.Equal("image_pooling", Assert.Throws<ArgumentException>((config with { ImagePooling = (ImagePooling)7 }).Validate).ParamName);
        Assert.Equal("text_pooling", Assert.Throws<ArgumentException>((config with { TextPooling = (TextPooling)7 }).Validate).ParamName);
    }

    [Fact]
    public void ReportVocabularyMapsIdsBothWaysAndGenerationEmitsOnlyListedTokens()
    {
        var tokenizer = TestModels.Tokenizer;
        var reports = new[] { "There is a pleural effusion.", "No pleural effusion." };
        var vocabulary = ColipriConfig.CorpusVocabulary(tokenizer, reports, tokenizer.Inner.UnknownTokenId);
        Assert.Equal(tokenizer.Inner.UnknownTokenId, vocabulary[0]);
        Assert.Contains(tokenizer.PaddingTokenId, vocabulary);
        Assert.Equal(vocabulary.Count, vocabulary.Distinct().Count());
        Assert.All(tokenizer.Encode(reports[0], 64), id => Assert.Contains(id, vocabulary));
        random.manual_seed(5);
        using var model = new ColipriModel(ColipriParityTests.TinyConfig() with
        {
            Text = ColipriParityTests.TinyConfig().Text with { VocabSize = tokenizer.VocabularySize },
            ReportVocabulary = vocabulary,
        });
        using var scope = NewDisposeScope();
        var ids = tensor(new long[] { vocabulary[3], 7592, vocabulary[1] }).unsqueeze(0); // 7592 ("hello") is not listed
        Assert.Equal(new long[] { 3, 0, 1 }, model.ToReportVocabulary(ids).data<long>().ToArray());
        var tokens = model.EncodeImageTokens(randn(new long[] { 1, 1, 16, 16, 16 }));
        Assert.Equal(vocabulary.Count, model.ReportLogits(tokens, ids, ones_like(ids)).shape[2]);
        var generated = model.GenerateReport(tokens, tokenizer.ClassificationTokenId, tokenizer.SeparatorTokenId, 10);
        Assert.NotEmpty(generated);
        Assert.All(generated, id => Assert.Contains((int)id, vocabulary));
    }

    [Fact]
    public void PackageSaveAndLoadGiveTheSameEmbeddingsAndReports()
    {
        using var folder = TestData.NewTempFolder();
        var tokenizer = TestModels.Tokenizer;
        var config = ColipriParityTests.TinyConfig() with
        {
            Text = ColipriParityTests.TinyConfig().Text with { VocabSize = tokenizer.VocabularySize },
            ReportVocabulary = ColipriConfig.CorpusVocabulary(tokenizer, ["There is a pleural effusion.", "The heart is enlarged."], tokenizer.Inner.UnknownTokenId),
        };
        var volume = TestModels.RandomVolume(3);
        const string Report = "There is a pleural effusion.";
        float[] image, text;
        long[] generated;
        using (var model = VisionLanguageModel.Create(config, tokenizer, TestModels.Preprocessing(16), seed: 9))
        {
            image = model.VolumeEncoder.Embed(volume);
            text = model.TextEncoder.Embed(Report);
            generated = Generate((ColipriModel)model.Module, model.PrepareVolumesForTraining([volume]), tokenizer);
            model.Save(folder.Path);
        }

        using var loaded = VisionLanguageModel.Load(folder.Path);
        Assert.Equal("colipri", loaded.Architecture);
        Assert.Equal(config.ToJson(), loaded.Config.ToJson());
        Assert.Equal(image, loaded.VolumeEncoder.Embed(volume));
        Assert.Equal(text, loaded.TextEncoder.Embed(Report));
        Assert.Equal(generated, Generate((ColipriModel)loaded.Module, loaded.PrepareVolumesForTraining([volume]), tokenizer));
        Assert.Equal(1.0, Math.Sqrt(image.Sum(v => (double)v * v)), 5);
    }

    [Fact]
    public void TinyStemBatchNormRoundTripsAndItsRunningStatisticsTravelWithThePackage()
    {
        var tiny = ColipriConfig.Tiny();
        Assert.True(tiny.Encoder.StemBatchNorm);
        var json = tiny.ToJson();
        Assert.Contains("\"stem_batch_norm\": true", json, StringComparison.Ordinal);
        Assert.True(((ColipriConfig)ArchitectureConfig.FromJson(json)).Encoder.StemBatchNorm);

        // A config written before the option (no key) keeps the plain stem and its names stem.{0,2}.
        var older = (ColipriConfig)ArchitectureConfig.FromJson(System.Text.RegularExpressions.Regex.Replace(json, ",?\\s*\"stem_batch_norm\": true", string.Empty));
        Assert.False(older.Encoder.StemBatchNorm);
        using (var plain = new ColipriModel(older with { Text = older.Text with { VocabSize = 50 }, ReportVocabulary = null, CorpusReportVocabulary = false }, new Device(DeviceType.META)))
        {
            Assert.Contains(plain.named_parameters(), p => p.name == "backbone.stem.2.weight");
            Assert.DoesNotContain(plain.named_buffers(), b => b.name.StartsWith("backbone.stem.", StringComparison.Ordinal));
        }

        using var folder = TestData.NewTempFolder();
        var tokenizer = TestModels.Tokenizer;
        var small = ColipriParityTests.TinyConfig();
        var config = small with
        {
            Encoder = small.Encoder with { StemChannels = [4], StemBatchNorm = true },
            Text = small.Text with { VocabSize = tokenizer.VocabularySize },
        };
        var volume = TestModels.RandomVolume(3);
        float[] image;
        float[] runningMean;
        using (var model = VisionLanguageModel.Create(config, tokenizer, TestModels.Preprocessing(16), seed: 9))
        {
            var module = (ColipriModel)model.Module;
            Assert.Contains(module.named_parameters(), p => p.name == "backbone.stem.1.weight");

            // Training-mode forwards move the running statistics away from their (0, 1) start.
            module.train();
            using (var scope = NewDisposeScope())
            using (no_grad())
            {
                module.EncodeImage(randn(new long[] { 4, 1, 16, 16, 16 }) * 3 + 1);
            }

            module.eval();
            runningMean = module.named_buffers().Single(b => b.name == "backbone.stem.1.running_mean").buffer.data<float>().ToArray();
            Assert.Contains(runningMean, v => Math.Abs(v) > 1e-3);
            image = model.VolumeEncoder.Embed(volume);
            model.Save(folder.Path);
        }

        using var loaded = VisionLanguageModel.Load(folder.Path);
        Assert.True(((ColipriConfig)loaded.Config).Encoder.StemBatchNorm);
        Assert.Equal(runningMean, ((ColipriModel)loaded.Module).named_buffers().Single(b => b.name == "backbone.stem.1.running_mean").buffer.data<float>().ToArray());
        Assert.Equal(image, loaded.VolumeEncoder.Embed(volume));
    }

    private static long[] Generate(ColipriModel model, Tensor volumes, Text.WordPieceTextTokenizer tokenizer)
    {
        using var owned = volumes;
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        return model.GenerateReport(model.EncodeImageTokens(volumes), tokenizer.ClassificationTokenId, tokenizer.SeparatorTokenId, 12);
    }
}
