using MedVlp.Data;
using MedVlp.Training;
using MedVlp.Volumes;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Tests.Data;

/// <summary>The in-memory training source: volumes prepared chunk by chunk into one tensor, served in the epoch's order.</summary>
public sealed class PreparedTrainingDataTests
{
    private static Volume Filled(int value) =>
        new(Enumerable.Repeat((float)value, 2 * 3 * 4).ToArray(), new VolumeShape(2, 3, 4), Affine.FromSpacing(new Spacing(1, 1, 1)));

    [Fact]
    public void EveryExampleOfSeveralChunksReachesItsBatchIntactAndNothingStaysAlive()
    {
        // 150 examples: three preparation chunks of 64, 64 and 22; each volume is filled with its own index.
        var volumes = Enumerable.Range(0, 150).Select(Filled).ToArray();
        var reports = Enumerable.Range(0, 150).Select(i => i % 5 == 4 ? "" : $"report number {i}").ToArray();
        var before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        var calls = new List<int>();
        using (var data = new PreparedTrainingData(volumes, reports, v =>
        {
            calls.Add(v.Count);
            return Collator.CollateVolumes(v);
        }, new TrainingBatchCollator(TestModels.Tokenizer, 16), batchSize: 7, seed: 5))
        {
            Assert.Equal([64, 64, 22], calls);
            Assert.Equal(150 / 7, data.BatchesPerEpoch);
            var order = data.EpochOrder(1);
            var seen = new List<int>();
            foreach (var batch in data.ReadEpoch(1, 0, default))
            {
                using (batch)
                using (NewDisposeScope())
                {
                    Assert.Equal(new long[] { 7, 1, 4, 3, 2 }, batch.Volumes.shape);
                    for (var j = 0; j < 7; j++)
                    {
                        var key = order[seen.Count];
                        Assert.True(batch.Volumes[j].eq(key).all().item<bool>(), $"batch example {j} should be volume {key}");
                        Assert.Equal(key % 5 != 4, batch.Paired[j]);
                        seen.Add(key);
                    }
                }
            }

            Assert.Equal(order.Take(seen.Count), seen);
        }

        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    [Fact]
    public void APreparationThatLosesExamplesOrChangesShapeIsRefusedAndReleasesWhatItMade()
    {
        var volumes = Enumerable.Range(0, 70).Select(Filled).ToArray();
        var reports = volumes.Select(_ => "a report").ToArray();
        var collator = new TrainingBatchCollator(TestModels.Tokenizer, 16);
        var before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;

        var dropped = Assert.Throws<ArgumentException>(() => new PreparedTrainingData(volumes, reports,
            v => Collator.CollateVolumes(v.Take(v.Count - 1).ToArray()), collator, batchSize: 4, seed: 1));
        Assert.Contains("expected 64 along the first dimension", dropped.Message, StringComparison.Ordinal);

        // The second chunk (6 volumes) comes back at another size than the first.
        var reshaped = Assert.Throws<ArgumentException>(() => new PreparedTrainingData(volumes, reports,
            v => v.Count == 64 ? Collator.CollateVolumes(v) : zeros([v.Count, 1, 4, 3, 3]), collator, batchSize: 4, seed: 1));
        Assert.Contains("Volumes 64 .. 69", reshaped.Message, StringComparison.Ordinal);
        Assert.Contains("[1, 4, 3, 2]", reshaped.Message, StringComparison.Ordinal);
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }
}
