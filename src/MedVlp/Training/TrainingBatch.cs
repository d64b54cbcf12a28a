using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Training;

/// <summary>
/// One (micro-)batch as tensors: the preprocessed volumes, an optional second augmented view of each (self-supervised
/// objectives), and the tokenised reports of the examples that have one. Image-only and paired examples mix freely:
/// <see cref="Paired"/> says which rows carry a report (the text rows of the others are padding). Owns its tensors.
/// </summary>
public sealed class TrainingBatch : IDisposable
{
    private readonly bool _ownsTensors;
    private bool _disposed;

    /// <summary>Creates a batch (it takes ownership of the tensors).</summary>
    /// <param name="volumes">Volumes (B x C x Z x Y x X).</param>
    /// <param name="secondViews">A second augmented view of every volume (same shape), or null.</param>
    /// <param name="textIds">Token ids (B x T), or null when no example has a report.</param>
    /// <param name="textMask">Attention mask (B x T), or null with <paramref name="textIds"/>.</param>
    /// <param name="paired">Per row: whether it has a report.</param>
    public TrainingBatch(Tensor volumes, Tensor? secondViews, Tensor? textIds, Tensor? textMask, IReadOnlyList<bool> paired)
        : this(volumes, secondViews, textIds, textMask, paired, ownsTensors: true)
    {
    }

    private TrainingBatch(Tensor volumes, Tensor? secondViews, Tensor? textIds, Tensor? textMask, IReadOnlyList<bool> paired, bool ownsTensors)
    {
        ArgumentNullException.ThrowIfNull(volumes);
        ArgumentNullException.ThrowIfNull(paired);
        var count = volumes.shape[0];
        if (paired.Count != count || (secondViews is not null && !secondViews.shape.SequenceEqual(volumes.shape)) ||
            (textIds is null) != (textMask is null) || (textIds is not null && textIds.shape[0] != count))
        {
            throw new ArgumentException($"A training batch needs volumes, second views, texts and the paired flags of the same {count} examples.");
        }

        Volumes = volumes;
        SecondViews = secondViews;
        TextIds = textIds;
        TextMask = textMask;
        Paired = paired;
        _ownsTensors = ownsTensors;
    }

    /// <summary>Volumes (B x C x Z x Y x X).</summary>
    public Tensor Volumes { get; }

    /// <summary>The second augmented view of every volume, or null.</summary>
    public Tensor? SecondViews { get; }

    /// <summary>Token ids (B x T), or null.</summary>
    public Tensor? TextIds { get; }

    /// <summary>Attention mask (B x T), or null.</summary>
    public Tensor? TextMask { get; }

    /// <summary>Per row: whether the example has a report.</summary>
    public IReadOnlyList<bool> Paired { get; }

    /// <summary>Per row its report as text (empty for image-only rows), or null when the batch was built from tokens
    /// only: for objectives that tokenise a report their own way (MedBLIP splits it into prompt and answer).</summary>
    public IReadOnlyList<string>? Reports { get; init; }

    /// <summary>The number of examples.</summary>
    public int Count => Paired.Count;

    /// <summary>Rows <paramref name="start"/> .. <paramref name="start"/> + <paramref name="length"/> - 1 as views of this batch's
    /// tensors (no copy). Dispose the slice before this batch.</summary>
    public TrainingBatch Slice(int start, int length)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (start < 0 || length < 1 || start + length > Count)
        {
            throw new ArgumentOutOfRangeException(nameof(length), $"Rows {start}..{start + length - 1} are outside the batch of {Count}.");
        }

        return new TrainingBatch(
            Volumes.narrow(0, start, length), SecondViews?.narrow(0, start, length), TextIds?.narrow(0, start, length), TextMask?.narrow(0, start, length),
            Paired.Skip(start).Take(length).ToArray(), ownsTensors: true)
        {
            Reports = Reports?.Skip(start).Take(length).ToArray(),
        };
    }

    /// <summary>Moves the batch to <paramref name="device"/> (returns this batch when it is there already).</summary>
    public TrainingBatch To(Device device)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (Volumes.device.type == device.type && Volumes.device.index == device.index)
        {
            return this;
        }

        return new TrainingBatch(Volumes.to(device), SecondViews?.to(device), TextIds?.to(device), TextMask?.to(device), Paired) { Reports = Reports };
    }

    /// <summary>Releases the tensors.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        if (_ownsTensors)
        {
            Volumes.Dispose();
            SecondViews?.Dispose();
            TextIds?.Dispose();
            TextMask?.Dispose();
        }
    }
}

/// <summary>
/// What a model computes from a batch before the loss: named tensors whose first axis is the batch (for example
/// <c>"image"</c> and <c>"text"</c> embeddings). The trainer concatenates the feature sets of several micro-batches to
/// give a contrastive loss the negatives of the whole accumulated batch.
/// </summary>
public sealed class FeatureSet : IDisposable
{
    private readonly Dictionary<string, Tensor> _tensors;

    /// <summary>Creates a feature set; every tensor's first axis must be the batch.</summary>
    public FeatureSet(IEnumerable<KeyValuePair<string, Tensor>> tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        _tensors = new Dictionary<string, Tensor>(tensors, StringComparer.Ordinal);
        if (_tensors.Count == 0)
        {
            throw new ArgumentException("A feature set needs at least one tensor.", nameof(tensors));
        }

        var rows = _tensors.Values.Select(t => t.dim() == 0 ? -1 : t.shape[0]).Distinct().ToArray();
        if (rows.Length != 1 || rows[0] < 0)
        {
            throw new ArgumentException($"Every feature must have the batch as its first axis; got shapes {string.Join(", ", _tensors.Select(kv => $"{kv.Key} [{string.Join(", ", kv.Value.shape)}]"))}.", nameof(tensors));
        }

        Count = rows[0];
    }

    /// <summary>The number of rows (examples).</summary>
    public long Count { get; }

    /// <summary>The feature names.</summary>
    public IEnumerable<string> Names => _tensors.Keys;

    /// <summary>A feature by name.</summary>
    public Tensor this[string name] => _tensors.TryGetValue(name, out var t) ? t : throw new KeyNotFoundException($"The feature set has no feature \"{name}\" (it has {string.Join(", ", _tensors.Keys)}).");

    /// <summary>The features of several micro-batches, concatenated along the batch axis.</summary>
    public static FeatureSet Concat(IReadOnlyList<FeatureSet> parts)
    {
        ArgumentNullException.ThrowIfNull(parts);
        var names = parts[0].Names.ToArray();
        return new FeatureSet(names.Select(n => new KeyValuePair<string, Tensor>(n, cat(parts.Select(p => p[n]).ToArray(), 0))));
    }

    /// <summary>Moves every tensor of this set out of <paramref name="scope"/>.</summary>
    public FeatureSet MoveToOuter(DisposeScope scope)
    {
        ArgumentNullException.ThrowIfNull(scope);
        foreach (var t in _tensors.Values)
        {
            scope.MoveToOuter(t);
        }

        return this;
    }

    /// <summary>Releases the tensors.</summary>
    public void Dispose()
    {
        foreach (var t in _tensors.Values)
        {
            t.Dispose();
        }
    }

    internal IEnumerable<KeyValuePair<string, Tensor>> Items => _tensors;
}
