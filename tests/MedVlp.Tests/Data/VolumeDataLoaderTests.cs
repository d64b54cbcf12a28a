using System.Collections.Concurrent;
using MedVlp.Data;
using MedVlp.Testing;
using MedVlp.Volumes;
using MedVlp.Volumes.Transforms;

namespace MedVlp.Tests.Data;

/// <summary>The streaming loader: deterministic order, sharding, worker-independent results, bounded prefetch, cache, errors.</summary>
public sealed class VolumeDataLoaderTests
{
    private static ManifestEntry[] Entries(int n) =>
        [.. Enumerable.Range(0, n).Select(i => new ManifestEntry { Id = $"e{i}", Path = $"/virtual/{i}.nii", Report = $"report {i}", Line = i + 2 })];

    /// <summary>A fake reader: a small volume whose voxels encode the entry number.</summary>
    private static Func<string, CancellationToken, Volume> FakeReader(ConcurrentBag<string>? calls = null) => (path, _) =>
    {
        calls?.Add(path);
        var n = int.Parse(Path.GetFileNameWithoutExtension(Path.GetFileNameWithoutExtension(path)), System.Globalization.CultureInfo.InvariantCulture);
        var data = Enumerable.Range(0, 12 * 10 * 8).Select(v => (float)(n + (v * 0.001))).ToArray();
        return new Volume(data, new VolumeShape(12, 10, 8), Affine.FromSpacing(new Spacing(1, 1.5, 2)));
    };

    private static TransformPipeline Augmenting() => new(
    [
        new ResampleToSpacing(1.5),
        new CropOrPad { Size = new VolumeShape(8, 8, 8) },
        new RandomFlip(),
        new RandomIntensityShift { MaxOffset = 0.5 },
    ]);

    private static async Task<List<VolumeBatch>> ReadAll(VolumeDataLoader loader, int epoch)
    {
        var list = new List<VolumeBatch>();
        await foreach (var b in loader.ReadEpochAsync(epoch))
        {
            list.Add(b);
        }

        return list;
    }

    [Fact]
    public void ShuffleIsDeterministicAndShardsPartitionTheData()
    {
        var entries = Entries(103);
        var opts = new VolumeLoaderOptions { Seed = 7, Reader = FakeReader() };
        var a = new VolumeDataLoader(entries, null, opts).EpochOrder(3);
        Assert.Equal(a, new VolumeDataLoader(entries, null, opts).EpochOrder(3));
        Assert.NotEqual(a, new VolumeDataLoader(entries, null, opts).EpochOrder(4));
        Assert.Equal(Enumerable.Range(0, 103), a.Order());

        var shards = Enumerable.Range(0, 4).Select(i => new VolumeDataLoader(entries, null, new VolumeLoaderOptions { Seed = 7, ShardIndex = i, ShardCount = 4 }).EpochOrder(3)).ToArray();
        Assert.All(shards, s => Assert.Equal(25, s.Count));
        var union = shards.SelectMany(s => s).ToArray();
        Assert.Equal(100, union.Distinct().Count());
        Assert.Equal(a.Take(100).Order(), union.Order());
        Assert.Equal((2, 8), VolumeLoaderOptions.ParseShard("2/8"));
        Assert.Throws<FormatException>(() => VolumeLoaderOptions.ParseShard("8/8"));
    }

    [Fact]
    public async Task ResultsDoNotDependOnTheNumberOfWorkers()
    {
        var entries = Entries(11);
        var one = await ReadAll(new VolumeDataLoader(entries, Augmenting(), new VolumeLoaderOptions { BatchSize = 3, Workers = 1, Seed = 5, Reader = FakeReader() }), 2);
        var three = await ReadAll(new VolumeDataLoader(entries, Augmenting(), new VolumeLoaderOptions { BatchSize = 3, Workers = 3, PrefetchBatches = 1, Seed = 5, Reader = FakeReader() }), 2);
        Assert.Equal(4, one.Count);
        Assert.Equal([3, 3, 3, 2], one.Select(b => b.Samples.Count));
        var flatOne = one.SelectMany(b => b.Samples).ToArray();
        var flatThree = three.SelectMany(b => b.Samples).ToArray();
        Assert.Equal(flatOne.Select(s => s.Entry.Id), flatThree.Select(s => s.Entry.Id));
        for (var n = 0; n < flatOne.Length; n++)
        {
            Assert.Equal(flatOne[n].Volume.Data.ToArray(), flatThree[n].Volume.Data.ToArray());
            Assert.Equal(flatOne[n].Volume.Affine, flatThree[n].Volume.Affine);
        }

        var other = await ReadAll(new VolumeDataLoader(entries, Augmenting(), new VolumeLoaderOptions { BatchSize = 3, Workers = 2, Seed = 5, Reader = FakeReader() }), 3);
        Assert.NotEqual(flatOne.Select(s => s.Entry.Id), other.SelectMany(b => b.Samples).Select(s => s.Entry.Id));
        using var t = one[0].ToTensor();
        Assert.Equal([3L, 1, 8, 8, 8], t.shape);
        Assert.Equal(["report " + flatOne[0].Entry.Id[1..], "report " + flatOne[1].Entry.Id[1..], "report " + flatOne[2].Entry.Id[1..]], one[0].Reports);
    }

    [Theory]
    [InlineData(true, 0)]
    [InlineData(false, 0)]
    [InlineData(true, 2)]
    [InlineData(false, 3)]
    public async Task TheCrossEpochStreamEqualsEpochAfterEpoch(bool dropLast, int firstBatch)
    {
        var entries = Entries(11);
        VolumeLoaderOptions Options(int workers) => new() { BatchSize = 3, Workers = workers, PrefetchBatches = 1, DropLast = dropLast, Seed = 9, Reader = FakeReader() };
        var expected = new List<VolumeBatch>();
        var perEpoch = new VolumeDataLoader(entries, Augmenting(), Options(1));
        for (var epoch = 4; epoch <= 6; epoch++)
        {
            await foreach (var b in perEpoch.ReadEpochAsync(epoch, epoch == 4 ? firstBatch : 0))
            {
                expected.Add(b);
            }
        }

        var stream = new List<VolumeBatch>();
        await foreach (var b in new VolumeDataLoader(entries, Augmenting(), Options(2)).ReadEpochsAsync(4, firstBatch))
        {
            stream.Add(b);
            if (stream.Count == expected.Count)
            {
                break;
            }
        }

        Assert.Equal((dropLast ? 9 : 12) - firstBatch, expected.Count);
        Assert.Equal(expected.Select(b => (b.Epoch, b.Index, b.Samples.Count)), stream.Select(b => (b.Epoch, b.Index, b.Samples.Count)));
        var a = expected.SelectMany(b => b.Samples).ToArray();
        var c = stream.SelectMany(b => b.Samples).ToArray();
        Assert.Equal(a.Select(s => (s.Entry.Id, s.Position)), c.Select(s => (s.Entry.Id, s.Position)));
        for (var n = 0; n < a.Length; n++)
        {
            Assert.Equal(a[n].Volume.Data.ToArray(), c[n].Volume.Data.ToArray());
        }
    }

    [Fact]
    public async Task TheCrossEpochStreamReadsTheNextEpochBeforeThisOneIsConsumed()
    {
        var calls = new ConcurrentBag<string>();
        var loader = new VolumeDataLoader(Entries(4), null, new VolumeLoaderOptions { BatchSize = 2, Workers = 1, PrefetchBatches = 2, Shuffle = false, Reader = FakeReader(calls) });
        await using var e = loader.ReadEpochsAsync(0, 1).GetAsyncEnumerator();
        Assert.True(await e.MoveNextAsync());
        Assert.Equal((0, 1), (e.Current.Epoch, e.Current.Index));
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (calls.Count < 4 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
        }

        // the last batch of epoch 0 is in hand; the worker has gone on to epoch 1 without being asked
        Assert.InRange(calls.Count, 4, 2 + 5);
        Assert.True(await e.MoveNextAsync());
        Assert.Equal((1, 0), (e.Current.Epoch, e.Current.Index));
    }

    [Fact]
    public async Task PrefetchIsBounded()
    {
        var calls = new ConcurrentBag<string>();
        var loader = new VolumeDataLoader(Entries(60), null, new VolumeLoaderOptions { BatchSize = 2, Workers = 2, PrefetchBatches = 2, Reader = FakeReader(calls) });
        await using var e = loader.ReadEpochAsync(0).GetAsyncEnumerator();
        Assert.True(await e.MoveNextAsync());
        await Task.Delay(300); // give the workers every chance to run ahead
        // consumed 2; each of 2 workers holds at most 2 ready and 1 in hand
        Assert.InRange(calls.Count, 2, 2 + (2 * 2) + 2);
    }

    [Fact]
    public async Task BreakingOutStopsTheWorkers()
    {
        var calls = new ConcurrentBag<string>();
        var loader = new VolumeDataLoader(Entries(200), null, new VolumeLoaderOptions { Workers = 2, PrefetchBatches = 1, Reader = FakeReader(calls) });
        await foreach (var b in loader.ReadEpochAsync(0))
        {
            break;
        }

        var after = calls.Count;
        await Task.Delay(200);
        Assert.Equal(after, calls.Count);
        Assert.True(after < 10);
    }

    [Fact]
    public async Task AFailingExampleIsNamed()
    {
        var reader = FakeReader();
        var loader = new VolumeDataLoader(Entries(9), null, new VolumeLoaderOptions { Workers = 3, Shuffle = false, Reader = (p, ct) => p.EndsWith("/4.nii", StringComparison.Ordinal) ? throw new IOException("disk on fire") : reader(p, ct) });
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => ReadAll(loader, 0));
        Assert.Contains("Example \"e4\" (manifest line 6, /virtual/4.nii): disk on fire", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheCacheSkipsReadingAndKeepsResults()
    {
        using var dir = TestData.NewTempFolder();
        var entries = Enumerable.Range(0, 5).Select(i =>
        {
            var path = dir.File($"{i}.nii");
            File.WriteAllText(path, "x");
            return new ManifestEntry { Id = $"e{i}", Path = path };
        }).ToArray();
        var calls = new ConcurrentBag<string>();
        var options = new VolumeLoaderOptions { BatchSize = 2, Workers = 2, Seed = 1, CacheDirectory = dir.File("cache"), Reader = FakeReader(calls) };
        var uncached = await ReadAll(new VolumeDataLoader(entries, Augmenting(), options), 1);
        Assert.Equal(5, calls.Count);
        var cached = await ReadAll(new VolumeDataLoader(entries, Augmenting(), options), 1);
        Assert.Equal(5, calls.Count);
        var a = uncached.SelectMany(b => b.Samples).ToArray();
        var b2 = cached.SelectMany(b => b.Samples).ToArray();
        for (var n = 0; n < a.Length; n++)
        {
            Assert.Equal(a[n].Volume.Data.ToArray(), b2[n].Volume.Data.ToArray());
            Assert.True(a[n].Volume.Affine.ApproximatelyEquals(b2[n].Volume.Affine, 0));
        }

        // a different pipeline prefix is a different cache key
        var other = new TransformPipeline([new ResampleToSpacing(2), new RandomFlip()]);
        await ReadAll(new VolumeDataLoader(entries, other, options), 1);
        Assert.Equal(10, calls.Count);

        // a damaged entry is a miss, and is rewritten
        var cache = new PreprocessedVolumeCache(dir.File("cache"));
        var fingerprint = Augmenting().Fingerprint(Augmenting().DeterministicPrefixLength);
        File.WriteAllBytes(cache.PathFor(entries[0].Path, fingerprint), [1, 2, 3]);
        Assert.Null(cache.TryRead(entries[0].Path, fingerprint));
        await ReadAll(new VolumeDataLoader(entries, Augmenting(), options), 1);
        Assert.Equal(11, calls.Count);
        Assert.NotNull(cache.TryRead(entries[0].Path, fingerprint));
    }
}
