using MedVlp.Volumes;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Data;

/// <summary>One preprocessed example: the manifest entry and its volume.</summary>
/// <param name="Entry">The manifest entry.</param>
/// <param name="Volume">The preprocessed volume.</param>
/// <param name="Position">The example's position in this epoch's order (for this shard).</param>
public sealed record LoadedSample(ManifestEntry Entry, Volume Volume, int Position);

/// <summary>A batch of preprocessed examples, in the epoch's deterministic order.</summary>
public sealed class VolumeBatch
{
    internal VolumeBatch(int epoch, int index, IReadOnlyList<LoadedSample> samples)
    {
        Epoch = epoch;
        Index = index;
        Samples = samples;
    }

    /// <summary>The epoch.</summary>
    public int Epoch { get; }

    /// <summary>The batch's index within the epoch (for this shard).</summary>
    public int Index { get; }

    /// <summary>The examples.</summary>
    public IReadOnlyList<LoadedSample> Samples { get; }

    /// <summary>The report texts, in order.</summary>
    public IReadOnlyList<string> Reports => [.. Samples.Select(s => s.Entry.Report)];

    /// <summary>
    /// Stacks the volumes into a <c>[batch, frames, k, j, i]</c> float32 tensor (the channel axis holds the frames), on
    /// <paramref name="device"/> (CPU when null), with <see cref="Collator.CollateVolumes"/>. The caller owns the tensor.
    /// </summary>
    /// <exception cref="InvalidOperationException">The volumes differ in shape (the pipeline should end in a fixed size).</exception>
    public Tensor ToTensor(Device? device = null)
    {
        try
        {
            return Collator.CollateVolumes([.. Samples.Select(s => s.Volume)], null, device);
        }
        catch (ArgumentException ex)
        {
            throw new InvalidOperationException($"Batch {Index} of epoch {Epoch}: {ex.Message}", ex);
        }
    }
}
