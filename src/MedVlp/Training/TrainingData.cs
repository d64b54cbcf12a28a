using System.Text.RegularExpressions;
using MedVlp.Data;
using MedVlp.Text;
using MedVlp.Volumes;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Training;

/// <summary>
/// Where a <see cref="Trainer"/> gets its micro-batches: a deterministic order per seed and epoch, readable from any batch
/// (so a resumed run continues with exactly the batch it would have seen).
/// </summary>
public interface ITrainingData
{
    /// <summary>Examples per micro-batch.</summary>
    int BatchSize { get; }

    /// <summary>Micro-batches per epoch (incomplete batches are dropped).</summary>
    int BatchesPerEpoch { get; }

    /// <summary>The micro-batches of <paramref name="epoch"/> (1-based) from batch <paramref name="firstBatch"/> on; the caller disposes each.</summary>
    IEnumerable<TrainingBatch> ReadEpoch(int epoch, int firstBatch, CancellationToken cancellationToken);

    /// <summary>
    /// The micro-batches of <paramref name="firstEpoch"/> from batch <paramref name="firstBatch"/> on, then of every
    /// following epoch, without end (the trainer's stream); the caller disposes each. The default reads epoch after epoch
    /// through <see cref="ReadEpoch"/>; a source with workers overrides it to keep them reading across epoch boundaries.
    /// </summary>
    IEnumerable<TrainingBatch> ReadEpochs(int firstEpoch, int firstBatch, CancellationToken cancellationToken)
    {
        return Read(this, firstEpoch, firstBatch, cancellationToken);

        static IEnumerable<TrainingBatch> Read(ITrainingData data, int firstEpoch, int firstBatch, CancellationToken cancellationToken)
        {
            for (var e = firstEpoch; ; e++)
            {
                foreach (var batch in data.ReadEpoch(e, e == firstEpoch ? firstBatch : 0, cancellationToken))
                {
                    yield return batch;
                }
            }
        }
    }
}

/// <summary>
/// Turns examples into a <see cref="TrainingBatch"/>: stacks the volumes and tokenises the reports, optionally replacing a
/// report by a random subset of its sentences (seeded by the run seed, epoch and example, so batches do not depend on
/// workers or resumes). Examples with an empty report are image-only.
/// </summary>
public sealed partial class TrainingBatchCollator
{
    private readonly Collator _collator;
    private readonly TextCollation _text;
    private readonly double _sentenceSubset;
    private readonly int _seed;

    /// <summary>Creates a collator over one tokenizer.</summary>
    /// <param name="tokenizer">The report tokenizer.</param>
    /// <param name="maxTokens">Longest token sequence.</param>
    /// <param name="sentenceSubsetProbability">Probability of training on a random subset of a report's sentences.</param>
    /// <param name="seed">The seed of the text augmentation.</param>
    public TrainingBatchCollator(TextTokenizer tokenizer, int maxTokens, double sentenceSubsetProbability = 0, int seed = 0)
        : this(new Collator(tokenizer), new TextCollation { MaxTokens = maxTokens }, sentenceSubsetProbability, seed)
    {
    }

    /// <summary>Creates a collator on the model's public <see cref="Collator"/> (for example <see cref="VisionLanguageModel.Collator"/>).</summary>
    /// <param name="collator">Tokenises the reports.</param>
    /// <param name="text">Token count, padding side and tokenizer.</param>
    /// <param name="sentenceSubsetProbability">Probability that a report is replaced, for one step, by a random non-empty subset
    /// of its sentences (kept in order): a short prompt and a full report then mean the same. 0 disables it.</param>
    /// <param name="seed">The seed of the text augmentation.</param>
    public TrainingBatchCollator(Collator collator, TextCollation text, double sentenceSubsetProbability = 0, int seed = 0)
    {
        ArgumentNullException.ThrowIfNull(collator);
        ArgumentNullException.ThrowIfNull(text);
        ArgumentOutOfRangeException.ThrowIfLessThan(text.MaxTokens, 2);
        if (sentenceSubsetProbability is < 0 or > 1)
        {
            throw new ArgumentOutOfRangeException(nameof(sentenceSubsetProbability), sentenceSubsetProbability, "must be in [0, 1].");
        }

        _collator = collator;
        _text = text;
        _sentenceSubset = sentenceSubsetProbability;
        _seed = seed;
    }

    /// <summary>Builds a batch from stacked volumes (B x C x Z x Y x X, ownership passes to the batch) and the examples' reports.</summary>
    /// <param name="volumes">The volumes.</param>
    /// <param name="secondViews">Second views, or null.</param>
    /// <param name="reports">Per example its report (empty for image-only).</param>
    /// <param name="epoch">The epoch (seeds the text augmentation).</param>
    /// <param name="keys">Per example a stable key (its index in the dataset; seeds the text augmentation).</param>
    public TrainingBatch Collate(Tensor volumes, Tensor? secondViews, IReadOnlyList<string> reports, int epoch, IReadOnlyList<int> keys)
    {
        ArgumentNullException.ThrowIfNull(volumes);
        ArgumentNullException.ThrowIfNull(reports);
        ArgumentNullException.ThrowIfNull(keys);
        var paired = reports.Select(r => !string.IsNullOrWhiteSpace(r)).ToArray();
        if (!paired.Any(p => p))
        {
            return new TrainingBatch(volumes, secondViews, null, null, paired) { Reports = [.. reports] };
        }

        var texts = new string[reports.Count];
        for (var n = 0; n < texts.Length; n++)
        {
            texts[n] = paired[n] ? Augment(reports[n], new Random(TrainingSeeds.Derive(_seed, epoch, keys[n], 7))) : "";
        }

        var inputs = _collator.CollateTexts(texts, _text, volumes.device);
        // The reports as given (before augmentation): objectives that tokenise them their own way read these.
        return new TrainingBatch(volumes, secondViews, inputs.InputIds, inputs.AttentionMask, paired) { Reports = [.. reports] };
    }

    private string Augment(string text, Random random)
    {
        if (_sentenceSubset <= 0 || random.NextDouble() >= _sentenceSubset)
        {
            return text;
        }

        var sentences = SentenceBoundary().Split(text.Trim());
        if (sentences.Length <= 1)
        {
            return text;
        }

        var keep = sentences.Where(_ => random.NextDouble() < 0.5).ToList();
        if (keep.Count == 0)
        {
            keep.Add(sentences[random.Next(sentences.Length)]);
        }

        return string.Join(' ', keep);
    }

    [GeneratedRegex(@"(?<=[.!?])\s+")]
    private static partial Regex SentenceBoundary();
}

/// <summary>
/// Examples held in memory and preprocessed once by a deterministic pipeline (no augmentation): the fastest source for
/// small datasets such as the demo's. The order is a shuffle of the seed and epoch.
/// </summary>
public sealed class PreparedTrainingData : ITrainingData, IDisposable
{
    private readonly Tensor _volumes;
    private readonly string[] _reports;
    private readonly TrainingBatchCollator _collator;
    private readonly int _seed;

    /// <summary>Prepares <paramref name="volumes"/> with <paramref name="prepare"/> (in chunks) and keeps them on the CPU.</summary>
    /// <param name="volumes">The volumes.</param>
    /// <param name="reports">Their reports (empty for image-only examples).</param>
    /// <param name="prepare">Turns volumes into a (B x C x Z x Y x X) tensor (for example the model's preprocessing).</param>
    /// <param name="collator">Tokenises the reports.</param>
    /// <param name="batchSize">Examples per micro-batch.</param>
    /// <param name="seed">The seed of the order.</param>
    /// <param name="cancellationToken">Stops the preparation.</param>
    public PreparedTrainingData(IReadOnlyList<Volume> volumes, IReadOnlyList<string> reports, Func<IReadOnlyList<Volume>, Tensor> prepare,
        TrainingBatchCollator collator, int batchSize, int seed, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(volumes);
        ArgumentNullException.ThrowIfNull(reports);
        ArgumentNullException.ThrowIfNull(prepare);
        ArgumentNullException.ThrowIfNull(collator);
        if (volumes.Count != reports.Count)
        {
            throw new ArgumentException($"{volumes.Count} volumes but {reports.Count} reports.", nameof(reports));
        }

        if (batchSize < 1 || volumes.Count < batchSize)
        {
            throw new ArgumentException($"Training needs at least one full batch of {batchSize} examples; got {volumes.Count}.", nameof(volumes));
        }

        // One tensor of the final size, filled chunk by chunk: the prepared set is held once, with one chunk beside it
        // (concatenating the chunks at the end would hold it twice).
        const int Chunk = 64;
        Tensor? all = null;
        try
        {
            for (var start = 0; start < volumes.Count; start += Chunk)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var count = Math.Min(Chunk, volumes.Count - start);
                using var prepared = prepare(volumes.Skip(start).Take(count).ToArray());
                if (prepared.dim() < 1 || prepared.shape[0] != count)
                {
                    throw new ArgumentException($"The preparation turned {count} volumes into a tensor of shape [{string.Join(", ", prepared.shape)}]; expected {count} along the first dimension.", nameof(prepare));
                }

                if (all is null)
                {
                    all = empty([volumes.Count, .. prepared.shape.Skip(1)], prepared.dtype, CPU);
                }
                else if (!prepared.shape.Skip(1).SequenceEqual(all.shape.Skip(1)) || prepared.dtype != all.dtype)
                {
                    throw new ArgumentException($"Volumes {start} .. {start + count - 1} were prepared as {prepared.dtype} [{string.Join(", ", prepared.shape.Skip(1))}] per example; the first chunk as {all.dtype} [{string.Join(", ", all.shape.Skip(1))}].", nameof(prepare));
                }

                using var slot = all.narrow(0, start, count);
                slot.copy_(prepared);
            }

            _volumes = all!;
        }
        catch
        {
            all?.Dispose();
            throw;
        }

        _reports = [.. reports];
        _collator = collator;
        BatchSize = batchSize;
        _seed = seed;
    }

    /// <inheritdoc />
    public int BatchSize { get; }

    /// <summary>This process's shard in a data-parallel job (its rank), 0 .. <see cref="ShardCount"/> - 1 (default 0).</summary>
    public int ShardIndex { get; init; }

    /// <summary>The number of shards (the world size, default 1). Step b's global batch is positions
    /// [b*B*n, (b+1)*B*n) of the epoch order, and shard i takes every n-th of them from i (as <c>VolumeDataLoader</c>),
    /// so n processes with batch B see, together, the batch one process with batch n*B sees.</summary>
    public int ShardCount
    {
        get => _shardCount;
        init
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1);
            _shardCount = value;
        }
    }

    private readonly int _shardCount = 1;

    /// <inheritdoc />
    public int BatchesPerEpoch => _reports.Length / (BatchSize * ShardCount);

    /// <summary>The example order of an epoch.</summary>
    public int[] EpochOrder(int epoch)
    {
        var order = Enumerable.Range(0, _reports.Length).ToArray();
        new Random(TrainingSeeds.Derive(_seed, epoch, -1, 1)).Shuffle(order);
        return order;
    }

    /// <inheritdoc />
    public IEnumerable<TrainingBatch> ReadEpoch(int epoch, int firstBatch, CancellationToken cancellationToken)
    {
        if (ShardIndex < 0 || ShardIndex >= ShardCount)
        {
            throw new InvalidOperationException($"Shard index {ShardIndex} is outside 0 .. {ShardCount - 1}.");
        }

        var order = EpochOrder(epoch);
        var global = BatchSize * ShardCount;
        for (var b = firstBatch; b < BatchesPerEpoch; b++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var keys = new int[BatchSize];
            for (var j = 0; j < BatchSize; j++)
            {
                keys[j] = order[(b * global) + (j * ShardCount) + ShardIndex];
            }

            using var index = tensor(keys.Select(i => (long)i).ToArray());
            yield return _collator.Collate(_volumes.index_select(0, index), null, keys.Select(k => _reports[k]).ToArray(), epoch, keys);
        }
    }

    /// <summary>Releases the prepared volumes.</summary>
    public void Dispose() => _volumes.Dispose();
}

/// <summary>
/// Streams micro-batches from a <see cref="VolumeDataLoader"/> (manifest, worker threads, prefetch, augmentation) through a
/// <see cref="TrainingBatchCollator"/>; with two views, each example is augmented twice with independent seeds.
/// </summary>
public sealed class LoaderTrainingData : ITrainingData
{
    private readonly VolumeDataLoader _loader;
    private readonly TrainingBatchCollator _collator;

    /// <summary>Wraps <paramref name="loader"/> (its options should drop the last incomplete batch).</summary>
    public LoaderTrainingData(VolumeDataLoader loader, TrainingBatchCollator collator)
    {
        ArgumentNullException.ThrowIfNull(loader);
        ArgumentNullException.ThrowIfNull(collator);
        if (loader.BatchesPerEpoch < 1)
        {
            throw new ArgumentException($"The loader yields no full batch of {loader.Options.BatchSize} from {loader.ExamplesPerEpoch} examples.", nameof(loader));
        }

        _loader = loader;
        _collator = collator;
    }

    /// <inheritdoc />
    public int BatchSize => _loader.Options.BatchSize;

    /// <summary>Stack 2D images (one voxel thick along k) as [B, C, H, W] for 2D encoders instead of [B, C, 1, H, W].</summary>
    public bool Images { get; init; }

    /// <inheritdoc />
    public int BatchesPerEpoch => _loader.ExamplesPerEpoch / _loader.Options.BatchSize;

    /// <inheritdoc />
    public IEnumerable<TrainingBatch> ReadEpoch(int epoch, int firstBatch, CancellationToken cancellationToken) =>
        Collate(_loader.ReadEpochAsync(epoch, firstBatch, cancellationToken), cancellationToken);

    /// <summary>The trainer's stream: the loader's workers read on across epoch boundaries (see
    /// <see cref="VolumeDataLoader.ReadEpochsAsync"/>), so no epoch starts with an empty pipeline.</summary>
    public IEnumerable<TrainingBatch> ReadEpochs(int firstEpoch, int firstBatch, CancellationToken cancellationToken) =>
        Collate(_loader.ReadEpochsAsync(firstEpoch, firstBatch, cancellationToken), cancellationToken);

    private IEnumerable<TrainingBatch> Collate(IAsyncEnumerable<VolumeBatch> source, CancellationToken cancellationToken)
    {
        foreach (var batch in source.ToBlockingEnumerable(cancellationToken))
        {
            if (batch.Samples.Count < BatchSize)
            {
                continue; // an epoch's incomplete last batch
            }

            var volumes = Images ? Collator.CollateImages([.. batch.Samples.Select(s => s.Views[0])]) : batch.ToTensor();
            var second = batch.Samples[0].Views.Count > 1 ? (Images ? Collator.CollateImages([.. batch.Samples.Select(s => s.Views[1])]) : batch.ToTensor(null, 1)) : null;
            var keys = batch.Samples.Select(s => s.Position).ToArray();
            yield return _collator.Collate(volumes, second, batch.Reports, batch.Epoch, keys);
        }
    }
}

/// <summary>Stable seeds derived from a run seed, an epoch, an index and a purpose (SplitMix64; the same in every process).</summary>
internal static class TrainingSeeds
{
    public static int Derive(int seed, long epoch, long index, int purpose)
    {
        var z = unchecked(((ulong)(uint)seed << 32) ^ ((ulong)epoch * 0x9E3779B97F4A7C15UL) ^ ((ulong)index * 0xD1B54A32D192ED03UL) ^ ((ulong)(uint)purpose * 0x94D049BB133111EBUL));
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        return unchecked((int)(z ^ (z >> 31)));
    }
}
