using MedVlp.Inference;
using MedVlp.Volumes;

namespace MedVlp.Tests;

/// <summary>An all-NaN or all-Inf volume must not get an ordinary-looking zero-shot prediction: it carries a warning.</summary>
public sealed class NonFiniteVolumeTests
{
    private static readonly ZeroShotLabel[] Labels = [new("a", "A normal brain."), new("b", "Marked atrophy.")];

    [Theory]
    [InlineData(float.NaN, "all 8640 voxels are NaN")]
    [InlineData(float.PositiveInfinity, "all 8640 voxels are infinite")]
    [InlineData(float.NegativeInfinity, "all 8640 voxels are infinite")]
    public void PredictionsOfNonFiniteVolumesCarryAWarning(float value, string expected)
    {
        using var model = TestModels.TinyModel();
        var classifier = model.CreateZeroShotClassifier(Labels);
        var normal = TestModels.RandomVolume(1);
        var data = new float[normal.Data.Length];
        Array.Fill(data, value);
        var bad = new Volume(data, normal.Shape, normal.Affine);

        Assert.Empty(classifier.Classify(normal).Warnings);
        var single = classifier.Classify(bad);
        Assert.Contains(single.Warnings, w => w.Contains(expected, StringComparison.Ordinal));
        var batch = classifier.Classify([normal, bad]);
        Assert.Empty(batch[0].Warnings);
        Assert.Equal(single.Warnings, batch[1].Warnings);
    }

    [Fact]
    public void APartlyNaNVolumeIsCounted()
    {
        using var model = TestModels.TinyModel();
        var classifier = model.CreateZeroShotClassifier(Labels);
        var volume = TestModels.RandomVolume(2);
        volume.Data.Span[17] = float.NaN;
        var prediction = classifier.Classify(volume);
        Assert.Contains(prediction.Warnings, w => w.Contains("1 of 8640 voxels are NaN", StringComparison.Ordinal));
    }
}
