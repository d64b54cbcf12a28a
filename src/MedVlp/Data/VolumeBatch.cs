using MedVlp.Volumes;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Data;

/// <summary>One preprocessed example: the manifest entry and its volume.</summary>
/// <param name="Entry">The manifest entry.</param>
/// <param name="Volume">The preprocessed volume.</param>
/// <param name="Position">The example's position in this epoch's order (for this shard).</param>
public sealed record LoadedSample(ManifestEntry Entry, Volume Volume, int Position)
{
    /// <summary>Every augmented view of the example (<see cref="VolumeLoaderOptions.Views"/>); the first is <see cref="Volume"/>.</summary>
    public IReadOnlyList<Volume> Views { get; init; } = [Volume];
}

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
    public Tensor ToTensor(Device? device = null) => ToTensor(device, 0);

    /// <summary>Stacks one augmented view of every example (see <see cref="ToTensor(Device?)"/>).</summary>
    /// <param name="device">The device (CPU when null).</param>
    /// <param name="view">The view, 0 .. <see cref="VolumeLoaderOptions.Views"/> - 1.</param>
    public Tensor ToTensor(Device? device, int view)
    {
        var volumes = Samples.Select(s => view < s.Views.Count ? s.Views[view] : throw new ArgumentOutOfRangeException(nameof(view), view, $"The examples have {s.Views.Count} view(s).")).ToArray();
        try
        {
            return Collator.CollateVolumes(volumes, null, device);
        }
        catch (ArgumentException ex)
        {
            throw new InvalidOperationException($"Batch {Index} of epoch {Epoch}: {ex.Message}", ex);
        }
    }
}
