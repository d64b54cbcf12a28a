using MedVlp.Architectures.Colipri;
using MedVlp.Modeling;
using MedVlp.Testing;
using static TorchSharp.torch;

namespace MedVlp.Tests.Colipri;

[Collection(nameof(TorchRandomState))] // builds randomly initialised modules from libtorch's global generator
public sealed class ColipriInputWindowTests
{
    private static ColipriConfig Small(IReadOnlyList<HuWindow>? windows) => ColipriParityTests.TinyConfig() with { InputWindows = windows };

    [Fact]
    public void LungWindowAddsAClampedChannelInHounsfieldUnits()
    {
        random.manual_seed(3);
        using var model = new ColipriModel(Small([HuWindow.Lung]));
        Assert.Equal(1, model.ImageInputShape[0]);
        Assert.Equal(2, model.Sizes.BackboneChannels);

        // The colipri preset's scale: HU / 1000. Air, aerated lung, emphysematous lung, fluid, bone.
        double[] hu = [-1000, -850, -930, 12, 750];
        using var volumes = tensor(hu.Select(h => (float)(h / 1000)).ToArray()).reshape(hu.Length, 1, 1, 1, 1);
        using var windowed = model.WithWindows(volumes);
        Assert.Equal([hu.Length, 2L, 1, 1, 1], windowed.shape);
        var lung = windowed.select(1, 1).flatten().data<float>().ToArray();
        var expected = hu.Select(h => Math.Clamp((2 * (h + 1000) / 500) - 1, -1, 1)).ToArray();
        for (var i = 0; i < hu.Length; i++)
        {
            Assert.Equal(expected[i], lung[i], 5);
        }

        // The first channel is the input itself; lung and emphysema, 0.08 apart there, are 0.32 apart in the window.
        Assert.True(windowed.select(1, 0).flatten().allclose(volumes.flatten()));
        Assert.Equal(0.32, lung[1] - lung[2], 4);
    }

    [Fact]
    public void WindowedModelEncodesOneChannelVolumesAndReconstructsEveryChannel()
    {
        random.manual_seed(4);
        var config = Small([HuWindow.Lung]);
        using var model = new ColipriModel(config);
        Assert.Equal(model.CountParameters().Total, config.EstimateParameters());
        var size = config.Encoder.InputSize;
        using var volumes = rand([2, 1, size, size, size]) * 2 - 1;
        using var embedding = model.EncodeImage(volumes);
        Assert.Equal([2L, config.EmbeddingDim], embedding.shape);
        var (prediction, target, mask) = model.MaskedImageModeling(volumes);
        using (prediction)
        using (target)
        using (mask)
        {
            var p = config.Encoder.PatchSize;
            Assert.Equal(2L * p * p * p, target.shape[2]);
            Assert.Equal(target.shape, prediction.shape);
        }

        // Without windows the same weights cannot be loaded: the patch embedding has one input channel fewer.
        using var plain = new ColipriModel(Small(null));
        Assert.Equal(1, plain.Sizes.BackboneChannels);
        var voxels = (long)config.Encoder.PatchSize * config.Encoder.PatchSize * config.Encoder.PatchSize;
        Assert.Equal(model.CountParameters().Total - (((2L * config.Encoder.Width) + 1) * voxels), plain.CountParameters().Total); // patch embedding + reconstruction head
    }

    [Fact]
    public void WindowsRoundTripThroughJsonAndAreValidated()
    {
        var config = ColipriConfig.Tiny();
        Assert.Single(config.InputWindows!);
        var json = config.ToJson();
        Assert.Contains("\"input_windows\"", json, StringComparison.Ordinal);
        Assert.Contains("\"min_hu\": -1000", json, StringComparison.Ordinal);
        var back = (ColipriConfig)ArchitectureConfig.FromJson(json);
        Assert.Equal(HuWindow.Lung, back.InputWindows![0]);
        Assert.Null(ColipriConfig.Full().InputWindows);
        Assert.Equal("input_windows", Assert.Throws<ArgumentException>((config with { InputWindows = [new HuWindow { MinHu = -500, MaxHu = -1000 }] }).Validate).ParamName);
        Assert.Equal("input_windows", Assert.Throws<ArgumentException>((config with { Encoder = config.Encoder with { InChannels = 2 } }).Validate).ParamName);
    }
}
