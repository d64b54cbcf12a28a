using BenchmarkDotNet.Attributes;
using MedVlp.Data;
using MedVlp.Volumes.Transforms;

namespace MedVlp.Benchmarks;

/// <summary>
/// Loader throughput of the full COLIPRI pipeline (read gzipped NIfTI, orient SAR, 2 mm, clamp, rescale, crop/pad 192^3)
/// with the number of workers: volumes per second = <see cref="Volumes"/> / the reported time.
/// </summary>
public class LoaderBenchmarks
{
    /// <summary>Volumes per epoch (copies of one real MRI; COLIPRI's steps do the same work on any volume).</summary>
    public const int Volumes = 8;

    private ManifestEntry[] _entries = [];

    /// <summary>Worker threads.</summary>
    [Params(1, 2)]
    public int Workers { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var path = TestData.File("mricron/ch2.nii.gz");
        _entries = [.. Enumerable.Range(0, Volumes).Select(i => new ManifestEntry { Id = $"v{i}", Path = path })];
    }

    /// <summary>One epoch of <see cref="Volumes"/> volumes in batches of 2.</summary>
    [Benchmark]
    public async Task<int> ColipriEpoch()
    {
        var loader = new VolumeDataLoader(_entries, TransformPresets.Colipri(), new VolumeLoaderOptions { BatchSize = 2, Workers = Workers, PrefetchBatches = 2 });
        var n = 0;
        await foreach (var batch in loader.ReadEpochAsync(0).ConfigureAwait(false))
        {
            n += batch.Samples.Count;
        }

        return n;
    }
}
