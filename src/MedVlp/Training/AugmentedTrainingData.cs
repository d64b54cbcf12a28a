using MedVlp.Volumes;
using MedVlp.Volumes.Transforms;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Training;

/// <summary>
/// Preprocessed examples held in memory, augmented afresh every epoch into one or two views (two-view self-supervision
/// such as LVM-Med's): every view of every example draws from its own generator, seeded by the run seed, the epoch, the
/// example and the view, so batches do not depend on threads or resumes. The order is a shuffle of the seed and epoch.
/// </summary>
public sealed class AugmentedTrainingData : ITrainingData
{
    private readonly Volume[] _examples;
    private readonly string[] _reports;
    private readonly TransformPipeline? _augmentation;
    private readonly Func<IReadOnlyList<Volume>, Tensor> _collate;
    private readonly TrainingBatchCollator _collator;
    private readonly int _seed;

    /// <summary>Creates the data source.</summary>
    /// <param name="examples">The preprocessed examples (the model's input size).</param>
    /// <param name="reports">Their reports (empty strings for image-only training).</param>
    /// <param name="augmentation">The random transforms of each view, applied to the preprocessed example (they must keep its shape); null for none.</param>
    /// <param name="views">Views per example: 1, or 2 (the batch's <see cref="TrainingBatch.SecondViews"/>).</param>
    /// <param name="collate">Stacks examples into the model's input tensor (for example <c>Collator.CollateImages</c>).</param>
    /// <param name="collator">Tokenises the reports.</param>
    /// <param name="batchSize">Examples per micro-batch.</param>
    /// <param name="seed">The run seed.</param>
    public AugmentedTrainingData(IReadOnlyList<Volume> examples, IReadOnlyList<string> reports, TransformPipeline? augmentation, int views,
        Func<IReadOnlyList<Volume>, Tensor> collate, TrainingBatchCollator collator, int batchSize, int seed)
    {
        ArgumentNullException.ThrowIfNull(examples);
        ArgumentNullException.ThrowIfNull(reports);
        ArgumentNullException.ThrowIfNull(collate);
        ArgumentNullException.ThrowIfNull(collator);
        if (examples.Count != reports.Count)
        {
            throw new ArgumentException($"{examples.Count} examples but {reports.Count} reports.", nameof(reports));
        }

        if (views is not (1 or 2))
        {
            throw new ArgumentOutOfRangeException(nameof(views), views, "Views must be 1 or 2.");
        }

        if (batchSize < 1 || examples.Count < batchSize)
        {
            throw new ArgumentException($"Training needs at least one full batch of {batchSize} examples; got {examples.Count}.", nameof(examples));
        }

        _examples = [.. examples];
        _reports = [.. reports];
        _augmentation = augmentation;
        Views = views;
        _collate = collate;
        _collator = collator;
        BatchSize = batchSize;
        _seed = seed;
    }

    /// <inheritdoc />
    public int BatchSize { get; }

    /// <summary>Views per example.</summary>
    public int Views { get; }

    /// <inheritdoc />
    public int BatchesPerEpoch => _examples.Length / BatchSize;

    /// <inheritdoc />
    public IEnumerable<TrainingBatch> ReadEpoch(int epoch, int firstBatch, CancellationToken cancellationToken)
    {
        var order = Enumerable.Range(0, _examples.Length).ToArray();
        new Random(TrainingSeeds.Derive(_seed, epoch, -1, 1)).Shuffle(order);
        for (var b = firstBatch; b < BatchesPerEpoch; b++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var keys = order.AsSpan(b * BatchSize, BatchSize).ToArray();
            var first = _collate(View(keys, epoch, 0, cancellationToken));
            Tensor? second = null;
            try
            {
                second = Views == 2 ? _collate(View(keys, epoch, 1, cancellationToken)) : null;
            }
            catch
            {
                first.Dispose();
                throw;
            }

            yield return _collator.Collate(first, second, keys.Select(k => _reports[k]).ToArray(), epoch, keys);
        }
    }

    private Volume[] View(int[] keys, int epoch, int view, CancellationToken cancellationToken)
    {
        var result = new Volume[keys.Length];
        Parallel.For(0, keys.Length, new ParallelOptions { CancellationToken = cancellationToken }, n =>
        {
            var example = _examples[keys[n]];
            result[n] = _augmentation is null ? example : _augmentation.Apply(example, new Random(TrainingSeeds.Derive(_seed, epoch, keys[n], 11 + view)), cancellationToken);
        });
        return result;
    }
}
