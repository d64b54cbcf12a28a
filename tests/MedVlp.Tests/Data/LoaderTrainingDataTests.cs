using System.Text.Json.Nodes;
using MedVlp.Data;
using MedVlp.Synthetic;
using MedVlp.Testing;
using MedVlp.Training;
using MedVlp.Volumes.Transforms;
using static TorchSharp.torch;

namespace MedVlp.Tests.Data;

/// <summary>The trainer's loader source: manifests from <c>medvlp synth</c>, two augmented views, image-only examples, resume from any batch.</summary>
public sealed class LoaderTrainingDataTests
{
    [Fact]
    public void ReadsTwoViewsMixesImageOnlyExamplesAndResumesFromAnyBatch()
    {
        using var dir = TestData.NewTempFolder();
        var manifestPath = SyntheticManifest.Write(SyntheticBrainDataset.Generate(12, 8), dir.File("data"));
        // Every third example loses its report: an image-only example in the same run.
        var lines = File.ReadAllLines(manifestPath).Select((l, i) =>
        {
            var node = JsonNode.Parse(l)!;
            if (i % 3 == 2)
            {
                node["report"] = "";
            }

            return node.ToJsonString();
        });
        File.WriteAllLines(manifestPath, lines);
        var manifest = Manifest.Load(manifestPath);
        var pipeline = new TransformPipeline([new RandomFlip(), .. TestModels.Preprocessing(16).Transforms], "aug");
        var loader = new LoaderTrainingData(
            new VolumeDataLoader(manifest.Entries, pipeline, new VolumeLoaderOptions { BatchSize = 4, Workers = 2, Views = 2, Seed = 3, DropLast = true }),
            new TrainingBatchCollator(TestModels.Tokenizer, 64));
        Assert.Equal(3, loader.BatchesPerEpoch);

        var full = loader.ReadEpoch(2, 0, default).ToList();
        var resumed = loader.ReadEpoch(2, 1, default).ToList();
        try
        {
            Assert.Equal(3, full.Count);
            Assert.Equal(2, resumed.Count);
            for (var b = 0; b < 2; b++)
            {
                Assert.True(full[b + 1].Volumes.eq(resumed[b].Volumes).all().item<bool>());
                Assert.True(full[b + 1].SecondViews!.eq(resumed[b].SecondViews!).all().item<bool>());
                Assert.True(full[b + 1].TextIds!.eq(resumed[b].TextIds!).all().item<bool>());
                Assert.Equal(full[b + 1].Paired, resumed[b].Paired);
            }

            Assert.Equal(4, full.Sum(b => b.Paired.Count(p => !p))); // 4 of 12 examples are image-only
            Assert.Equal(new long[] { 4, 1, 16, 16, 16 }, full[0].SecondViews!.shape);
            // The views are augmented independently: some differ.
            Assert.Contains(full, b => !b.Volumes.eq(b.SecondViews!).all().item<bool>());
        }
        finally
        {
            foreach (var b in full.Concat(resumed))
            {
                b.Dispose();
            }
        }
    }
}
