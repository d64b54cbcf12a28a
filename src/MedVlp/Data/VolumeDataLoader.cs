using System.Runtime.CompilerServices;
using System.Threading.Channels;
using MedVlp.Volumes;
using MedVlp.Volumes.IO;
using MedVlp.Volumes.Transforms;

namespace MedVlp.Data;

/// <summary>
/// Streams preprocessed batches for training: worker threads read volumes, apply the pipeline and hand results to the
/// consumer through bounded channels (so at most <see cref="VolumeLoaderOptions.PrefetchBatches"/> batches wait in
/// memory). The order is a deterministic shuffle of the seed and epoch, split into shards for many processes; random
/// transforms get a seed derived from the run seed, epoch and example, so results do not depend on the number of workers.
/// </summary>
public sealed class VolumeDataLoader
{
    private readonly ManifestEntry[] _entries;
    private readonly TransformPipeline? _pipeline;
    private readonly VolumeLoaderOptions _options;
    private readonly PreprocessedVolumeCache? _cache;
    private readonly int _cachedSteps;
    private readonly string? _fingerprint;

    /// <summary>Creates a loader over <paramref name="entries"/>.</summary>
    /// <param name="entries">The examples (for example <c>manifest.Split("train")</c>).</param>
    /// <param name="pipeline">The preprocessing and augmentation; null to load volumes as they are.</param>
    /// <param name="options">Batching, workers, shuffling, sharding and caching.</param>
    public VolumeDataLoader(IEnumerable<ManifestEntry> entries, TransformPipeline? pipeline, VolumeLoaderOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(entries);
        _entries = [.. entries];
        _pipeline = pipeline;
        _options = options ?? new VolumeLoaderOptions();
        _options.Validate();
        if (_options.CacheDirectory is not null && pipeline is not null)
        {
            _cache = new PreprocessedVolumeCache(_options.CacheDirectory);
            _cachedSteps = pipeline.DeterministicPrefixLength;
            _fingerprint = pipeline.Fingerprint(_cachedSteps);
        }
    }

    /// <summary>The options.</summary>
    public VolumeLoaderOptions Options => _options;

    /// <summary>The number of examples this shard reads per epoch.</summary>
    public int ExamplesPerEpoch => _entries.Length / _options.ShardCount;

    /// <summary>The number of batches this shard yields per epoch.</summary>
    public int BatchesPerEpoch => _options.DropLast ? ExamplesPerEpoch / _options.BatchSize : (ExamplesPerEpoch + _options.BatchSize - 1) / _options.BatchSize;

    /// <summary>
    /// This shard's example indices (into the entries) for <paramref name="epoch"/>: every shard applies the same
    /// permutation of the seed and epoch and takes every n-th example from position i; the tail that would make shards
    /// unequal is dropped, so all processes run the same number of steps.
    /// </summary>
    public IReadOnlyList<int> EpochOrder(int epoch)
    {
        var order = Enumerable.Range(0, _entries.Length).ToArray();
        if (_options.Shuffle)
        {
            var rng = new Random(unchecked((int)Mix(_options.Seed, epoch, -1)));
            rng.Shuffle(order);
        }

        var n = _options.ShardCount;
        var count = order.Length / n;
        var mine = new int[count];
        for (var p = 0; p < count; p++)
        {
            mine[p] = order[(p * n) + _options.ShardIndex];
        }

        return mine;
    }

    /// <summary>The seed of the random transforms for an example in an epoch (independent of workers and shards).</summary>
    public int SampleSeed(int epoch, int entryIndex) => unchecked((int)Mix(_options.Seed, epoch, entryIndex));

    /// <summary>The seed of the random transforms for one view of an example (view 0 is <see cref="SampleSeed(int, int)"/>).</summary>
    public int SampleSeed(int epoch, int entryIndex, int view) =>
        view == 0 ? SampleSeed(epoch, entryIndex) : unchecked((int)Mix(_options.Seed ^ (int)(0x5BD1E995u * (uint)view), epoch, entryIndex));

    /// <summary>Loads and preprocesses one example (reading through the cache when one is configured).</summary>
    public Volume LoadExample(int entryIndex, int epoch, CancellationToken cancellationToken = default) => LoadExample(entryIndex, epoch, 0, cancellationToken);

    /// <summary>Loads and preprocesses one view of an example: every view applies the random transforms with its own seed.</summary>
    public Volume LoadExample(int entryIndex, int epoch, int view, CancellationToken cancellationToken = default)
    {
        var entry = _entries[entryIndex];
        try
        {
            Volume? volume = null;
            var start = 0;
            if (_cache is not null)
            {
                volume = _cache.TryRead(entry.Path, _fingerprint!);
                start = volume is null ? 0 : _cachedSteps;
            }

            volume ??= Read(entry.Path, cancellationToken);
            if (_pipeline is null)
            {
                return volume;
            }

            if (_cache is not null && start == 0)
            {
                volume = _pipeline.ApplyRange(volume, 0, _cachedSteps, null, cancellationToken);
                _cache.Write(entry.Path, _fingerprint!, volume);
                start = _cachedSteps;
            }

            var random = new Random(SampleSeed(epoch, entryIndex, view));
            return _pipeline.ApplyRange(volume, start, _pipeline.Transforms.Count - start, random, cancellationToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException and not VolumeFormatException)
        {
            throw new InvalidOperationException($"Example \"{entry.Id}\" (manifest line {entry.Line}, {entry.Path}): {ex.Message}", ex);
        }
    }

    /// <summary>Streams the batches of one epoch in order. Stop early by breaking out or cancelling; workers stop too.</summary>
    /// <param name="epoch">The epoch (changes the shuffle and the augmentation seeds).</param>
    /// <param name="cancellationToken">Stops the workers and the enumeration.</param>
    public IAsyncEnumerable<VolumeBatch> ReadEpochAsync(int epoch, CancellationToken cancellationToken = default) => ReadEpochAsync(epoch, 0, cancellationToken);

    /// <summary>Streams the batches of one epoch from batch <paramref name="firstBatch"/> on (to resume a run mid-epoch);
    /// the batches are the same as those of a full read.</summary>
    /// <param name="epoch">The epoch (changes the shuffle and the augmentation seeds).</param>
    /// <param name="firstBatch">The first batch to read (0-based).</param>
    /// <param name="cancellationToken">Stops the workers and the enumeration.</param>
    public IAsyncEnumerable<VolumeBatch> ReadEpochAsync(int epoch, int firstBatch, CancellationToken cancellationToken = default) =>
        StreamAsync(epoch, firstBatch, 1, cancellationToken);

    /// <summary>
    /// Streams the batches of epoch <paramref name="firstEpoch"/> from batch <paramref name="firstBatch"/> on, then of
    /// every following epoch, without end: the workers run on across epoch boundaries (they start reading the next epoch
    /// while the consumer still works on the end of this one), so the model never waits for a fresh pipeline to fill at the
    /// start of an epoch. Each epoch's batches are those of <see cref="ReadEpochAsync(int, int, CancellationToken)"/>
    /// (each <see cref="VolumeBatch"/> names its epoch). Stop by breaking out or cancelling; workers stop too.
    /// </summary>
    /// <param name="firstEpoch">The first epoch.</param>
    /// <param name="firstBatch">The first batch of <paramref name="firstEpoch"/> to read (0-based).</param>
    /// <param name="cancellationToken">Stops the workers and the enumeration.</param>
    public IAsyncEnumerable<VolumeBatch> ReadEpochsAsync(int firstEpoch, int firstBatch, CancellationToken cancellationToken = default) =>
        StreamAsync(firstEpoch, firstBatch, null, cancellationToken);

    /// <summary>The examples read per epoch (the incomplete last batch dropped or not).</summary>
    private int ExamplesRead => _options.DropLast ? ExamplesPerEpoch / _options.BatchSize * _options.BatchSize : ExamplesPerEpoch;

    /// <summary>The epoch and position in the epoch's order of the <paramref name="item"/>-th example of a stream that
    /// starts at position <paramref name="skip"/> of <paramref name="firstEpoch"/>.</summary>
    private (int Epoch, int Position) Locate(long item, int firstEpoch, int skip)
    {
        var perEpoch = ExamplesRead;
        var first = perEpoch - skip;
        if (item < first)
        {
            return (firstEpoch, skip + (int)item);
        }

        var rest = item - first;
        return (checked(firstEpoch + 1 + (int)(rest / perEpoch)), (int)(rest % perEpoch));
    }

    private async IAsyncEnumerable<VolumeBatch> StreamAsync(int firstEpoch, int firstBatch, int? epochs, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(firstBatch);
        var perEpoch = ExamplesRead;
        var skip = (int)Math.Min((long)firstBatch * _options.BatchSize, perEpoch);
        var total = epochs is { } n ? ((long)perEpoch * n) - skip : long.MaxValue;
        if (perEpoch == 0 || total <= 0)
        {
            yield break;
        }

        var workers = (int)Math.Min(_options.Workers, total);
        var perWorker = Math.Max(1, ((_options.PrefetchBatches * _options.BatchSize) + workers - 1) / workers);
        var channels = new Channel<(Volume[]? Volume, Exception? Error)>[workers];
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var tasks = new Task[workers];
        for (var w = 0; w < workers; w++)
        {
            channels[w] = Channel.CreateBounded<(Volume[]?, Exception?)>(new BoundedChannelOptions(perWorker) { SingleReader = true, SingleWriter = true, FullMode = BoundedChannelFullMode.Wait });
            var worker = w;
            // A dedicated thread per worker, blocking on its channel when it is full: the heavy, synchronous decoding and
            // preprocessing never holds thread-pool threads that the transforms' own Parallel.For loops need.
            tasks[w] = Task.Factory.StartNew(() => RunWorker(worker, workers, firstEpoch, skip, total, channels[worker].Writer, stop.Token),
                stop.Token, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        }

        try
        {
            var orders = new Dictionary<int, IReadOnlyList<int>>();
            var batch = new List<LoadedSample>(_options.BatchSize);
            var batchIndex = firstBatch;
            for (long item = 0; item < total; item++)
            {
                var (volume, error) = await channels[item % workers].Reader.ReadAsync(stop.Token).ConfigureAwait(false);
                if (error is not null)
                {
                    throw error;
                }

                var (epoch, position) = Locate(item, firstEpoch, skip);
                if (!orders.TryGetValue(epoch, out var order))
                {
                    orders.Remove(epoch - 1);
                    order = orders[epoch] = EpochOrder(epoch);
                }

                batch.Add(new LoadedSample(_entries[order[position]], volume![0], position) { Views = volume });
                if (batch.Count == _options.BatchSize || position == perEpoch - 1)
                {
                    yield return new VolumeBatch(epoch, batchIndex, batch);
                    batch = new List<LoadedSample>(_options.BatchSize);
                    batchIndex = position == perEpoch - 1 ? 0 : batchIndex + 1;
                }
            }
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            try
            {
                await Task.WhenAll(tasks).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // the workers were told to stop
            }
        }
    }

    private void RunWorker(int worker, int workers, int firstEpoch, int skip, long total, ChannelWriter<(Volume[]?, Exception?)> writer, CancellationToken token)
    {
        try
        {
            var orderEpoch = int.MinValue;
            IReadOnlyList<int> order = [];
            for (long item = worker; item < total; item += workers)
            {
                token.ThrowIfCancellationRequested();
                var (epoch, position) = Locate(item, firstEpoch, skip);
                if (epoch != orderEpoch)
                {
                    (orderEpoch, order) = (epoch, EpochOrder(epoch));
                }

                (Volume[]?, Exception?) loaded;
                try
                {
                    var views = new Volume[_options.Views];
                    for (var v = 0; v < views.Length; v++)
                    {
                        views[v] = LoadExample(order[position], epoch, v, token);
                    }

                    loaded = (views, null);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    loaded = (null, ex);
                }

                while (!writer.TryWrite(loaded))
                {
                    if (!writer.WaitToWriteAsync(token).AsTask().GetAwaiter().GetResult())
                    {
                        return;
                    }
                }

                if (loaded.Item2 is not null)
                {
                    break;
                }
            }
        }
        finally
        {
            writer.TryComplete();
        }
    }

    private Volume Read(string path, CancellationToken cancellationToken) =>
        _options.Reader is { } reader ? reader(path, cancellationToken) : VolumeReader.Read(path, _options.ReadOptions, cancellationToken);

    /// <summary>SplitMix64 of the seed, epoch and index: a stable, well-mixed 64-bit value (unlike HashCode, the same in every process).</summary>
    private static ulong Mix(int seed, int epoch, int index)
    {
        var z = unchecked(((ulong)(uint)seed << 32) ^ ((ulong)(uint)epoch * 0x9E3779B97F4A7C15UL) ^ ((ulong)(uint)index * 0xD1B54A32D192ED03UL));
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        return z ^ (z >> 31);
    }
}
