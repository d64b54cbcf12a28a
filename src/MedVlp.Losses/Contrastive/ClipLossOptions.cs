namespace MedVlp.Losses;

/// <summary>Options of <see cref="ClipLoss"/> and <c>ChunkedClipLoss</c>.</summary>
public sealed class ClipLossOptions
{
    /// <summary>Cross-entropy label smoothing in [0, 1); 0 (open_clip's default) is plain InfoNCE.</summary>
    public double LabelSmoothing { get; set; }

    /// <summary>With several processes, score only local rows against all columns (open_clip <c>local_loss</c>); else every process scores the full global matrix.</summary>
    public bool LocalLoss { get; set; }

    /// <summary>How embeddings are collected across processes; null means a single process.</summary>
    public IFeatureGatherer? Gatherer { get; set; }

    /// <summary>Rows per block of <c>ChunkedClipLoss</c> (bounds its memory to ChunkSize x B logits); ignored by <see cref="ClipLoss"/>.</summary>
    public int ChunkSize { get; set; } = 1024;
}
