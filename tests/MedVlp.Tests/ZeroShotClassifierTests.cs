using MedVlp.Inference;
using MedVlp.Volumes;
using Microsoft.Extensions.AI;

namespace MedVlp.Tests;

public sealed class ZeroShotClassifierTests
{
    private static readonly ZeroShotLabel[] Labels =
    [
        new("CN", ["The diagnosis is Not demented.", "No ventricular enlargement."]),
        new("MCI", "The diagnosis is mild cognitive impairment (MCI)."),
        new("AD", "The diagnosis is Dementia."),
    ];

    [Fact]
    public void ProbabilitiesFollowTheScaledCosineSimilarities()
    {
        using var model = TestModels.TinyModel();
        var classifier = model.CreateZeroShotClassifier(Labels);
        var volume = TestModels.RandomVolume(3);
        var prediction = classifier.Classify(volume);
        Assert.Equal(3, prediction.Probabilities.Count);
        Assert.Equal(1.0, prediction.Probabilities.Sum(p => (double)p), 5);
        Assert.Equal(prediction.Probabilities.ToList().IndexOf(prediction.Probabilities.Max()), prediction.LabelIndex);
        Assert.Equal(Labels[prediction.LabelIndex].Name, prediction.Label);

        // The class embedding of a label with several prompts is their normalised mean.
        var embedding = model.VolumeEncoder.Embed(volume);
        var prompts = model.TextEncoder.Embed(Labels[0].Prompts);
        var mean = Enumerable.Range(0, 8).Select(d => prompts.Average(p => (double)p[d])).ToArray();
        var norm = Math.Sqrt(mean.Sum(v => v * v));
        var cosine = Enumerable.Range(0, 8).Sum(d => embedding[d] * mean[d] / norm);
        Assert.Equal(cosine, prediction.Similarities[0], 5);
        var scale = model.LogitScale;
        var logits = prediction.Similarities.Select(s => Math.Exp(scale * s)).ToArray();
        Assert.Equal(logits[2] / logits.Sum(), prediction.Probabilities[2], 5);
    }

    [Fact]
    public void ConcurrentCallersGetTheSameAnswersAsOneCaller()
    {
        using var model = TestModels.TinyModel();
        var classifier = model.CreateZeroShotClassifier(Labels);
        var volumes = Enumerable.Range(0, 12).Select(n => TestModels.RandomVolume(100 + n)).ToArray();
        var sequential = volumes.Select(v => model.VolumeEncoder.Embed(v)).ToArray();
        var parallel = new float[volumes.Length][];
        var texts = new float[volumes.Length][];
        Parallel.For(0, volumes.Length, new ParallelOptions { MaxDegreeOfParallelism = 4 }, n =>
        {
            parallel[n] = model.VolumeEncoder.Embed(volumes[n]);
            texts[n] = model.TextEncoder.Embed($"Report number {n}.");
            _ = classifier.Classify(volumes[n]);
        });
        for (var n = 0; n < volumes.Length; n++)
        {
            Assert.Equal(sequential[n], parallel[n]);
            Assert.Equal(model.TextEncoder.Embed($"Report number {n}."), texts[n]);
        }

        // The batch form gives the single-volume answers too, up to float rounding (a batch of 12 may sum in another
        // order than a batch of 1). An absolute tolerance, not "equal when rounded to 5 places": two values 6e-8 apart
        // can round to different fifth decimals.
        var batch = model.VolumeEncoder.Embed(volumes);
        for (var n = 0; n < volumes.Length; n++)
        {
            for (var d = 0; d < sequential[n].Length; d++)
            {
                Assert.Equal(sequential[n][d], batch[n][d], 1e-5f);
            }
        }
    }

    [Fact]
    public async Task EncodersAreMicrosoftExtensionsAiEmbeddingGenerators()
    {
        using var model = TestModels.TinyModel();
        await CheckGenerators(model, model.VolumeEncoder, model.TextEncoder);
    }

#pragma warning disable CA1859 // The point of this test is to use the encoders through the Microsoft.Extensions.AI interfaces.
    private static async Task CheckGenerators(VisionLanguageModel model, IEmbeddingGenerator<Volume, Embedding<float>> volumes, IEmbeddingGenerator<string, Embedding<float>> texts)
    {
        var volume = TestModels.RandomVolume(8);
        var generated = await volumes.GenerateAsync([volume]);
        AssertClose(model.VolumeEncoder.Embed(volume), generated[0].Vector.ToArray());
        var textGenerated = await texts.GenerateAsync(["MMSE 21.", "MMSE 29."]);
        Assert.Equal(2, textGenerated.Count);
        AssertClose(model.TextEncoder.Embed("MMSE 29."), textGenerated[1].Vector.ToArray());
        Assert.Equal(8, volumes.GetService<EmbeddingGeneratorMetadata>()!.DefaultModelDimensions);
        Assert.Same(model, texts.GetService(typeof(VisionLanguageModel)));
    }
#pragma warning restore CA1859

    // Another thread (GenerateAsync runs on the thread pool) may pick another libtorch kernel: equal to float rounding.
    private static void AssertClose(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var n = 0; n < expected.Length; n++)
        {
            Assert.True(Math.Abs(expected[n] - actual[n]) < 1e-6, $"element {n}: {expected[n]} vs {actual[n]}");
        }
    }

    [Fact]
    public void RejectsUnusableLabels()
    {
        using var model = TestModels.TinyModel();
        Assert.Throws<ArgumentException>(() => model.CreateZeroShotClassifier([new ZeroShotLabel("A", "a")]));
        Assert.Throws<ArgumentException>(() => model.CreateZeroShotClassifier([new ZeroShotLabel("A", "a"), new ZeroShotLabel("A", "b")]));
        Assert.Throws<ArgumentException>(() => model.CreateZeroShotClassifier([new ZeroShotLabel("A", "a"), new ZeroShotLabel("B", Array.Empty<string>())]));
    }
}
