using MedVlp.Volumes;
using MedVlp.Volumes.IO;

namespace MedVlp.Data;

/// <summary>Options of a <see cref="VolumeDataLoader"/>.</summary>
public sealed class VolumeLoaderOptions
{
    /// <summary>Volumes per batch (default 1).</summary>
    public int BatchSize { get; init; } = 1;

    /// <summary>Worker threads that read and preprocess volumes (default: the processor count).</summary>
    public int Workers { get; init; } = Environment.ProcessorCount;

    /// <summary>How many batches may be ready ahead of the consumer (default 2): bounds memory use.</summary>
    public int PrefetchBatches { get; init; } = 2;

    /// <summary>Shuffle the order every epoch, deterministically from <see cref="Seed"/> and the epoch (default true).</summary>
    public bool Shuffle { get; init; } = true;

    /// <summary>The seed of the shuffles and of the random transforms (default 0).</summary>
    public int Seed { get; init; }

    /// <summary>This process's shard, 0 .. <see cref="ShardCount"/> - 1 (default 0).</summary>
    public int ShardIndex { get; init; }

    /// <summary>The number of shards the dataset is split into, one per process or machine (default 1).</summary>
    public int ShardCount { get; init; } = 1;

    /// <summary>Augmented views per example (default 1; 2 for self-supervised objectives): each view applies the random
    /// transforms with its own seed.</summary>
    public int Views { get; init; } = 1;

    /// <summary>Drop a last batch smaller than <see cref="BatchSize"/> (default false).</summary>
    public bool DropLast { get; init; }

    /// <summary>A folder for the on-disk cache of preprocessed volumes (the pipeline's deterministic prefix); null for none.</summary>
    public string? CacheDirectory { get; init; }

    /// <summary>Options for reading volumes.</summary>
    public VolumeReadOptions? ReadOptions { get; init; }

    /// <summary>Reads a volume file or series folder; defaults to <see cref="VolumeReader"/>.</summary>
    public Func<string, CancellationToken, Volume>? Reader { get; init; }

    /// <summary>Parses a shard given as <c>"i/n"</c> (for example <c>--shard 2/8</c>).</summary>
    /// <exception cref="FormatException">The text is not <c>i/n</c> with 0 &lt;= i &lt; n.</exception>
    public static (int Index, int Count) ParseShard(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var parts = text.Split('/');
        if (parts.Length == 2 && int.TryParse(parts[0], out var i) && int.TryParse(parts[1], out var n) && n > 0 && i >= 0 && i < n)
        {
            return (i, n);
        }

        throw new FormatException($"A shard is \"i/n\" with 0 <= i < n, got \"{text}\".");
    }

    internal void Validate()
    {
        if (BatchSize < 1 || Views < 1 || Workers < 1 || PrefetchBatches < 1 || ShardCount < 1 || ShardIndex < 0 || ShardIndex >= ShardCount)
        {
            throw new ArgumentException($"Loader options need BatchSize, Workers, PrefetchBatches, ShardCount >= 1 and 0 <= ShardIndex < ShardCount; got batch {BatchSize}, workers {Workers}, prefetch {PrefetchBatches}, shard {ShardIndex}/{ShardCount}.");
        }
    }
}
