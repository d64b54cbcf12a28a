using static TorchSharp.torch;

namespace MedVlp.Losses;

/// <summary>
/// Collects embeddings from every process of a data-parallel job, so contrastive losses see the global batch
/// (open_clip's <c>gather_features</c>). Implement it over your collective library; the default is
/// <see cref="SingleProcessGatherer"/>.
/// </summary>
public interface IFeatureGatherer
{
    /// <summary>This process's index in [0, <see cref="WorldSize"/>).</summary>
    int Rank { get; }

    /// <summary>The number of processes.</summary>
    int WorldSize { get; }

    /// <summary>
    /// Concatenates every process's <paramref name="local"/> along dimension 0 in rank order. The slice at
    /// <see cref="Rank"/> must carry the gradient of <paramref name="local"/> (either gather with gradients,
    /// or replace the local slice with <paramref name="local"/> itself).
    /// </summary>
    /// <param name="local">This process's features (B x ...), identical in shape on every process.</param>
    /// <returns>All features (WorldSize*B x ...).</returns>
    Tensor AllGather(Tensor local);
}

/// <summary>The single-process gatherer: world size 1, gathering returns the input.</summary>
public sealed class SingleProcessGatherer : IFeatureGatherer
{
    private SingleProcessGatherer()
    {
    }

    /// <summary>The shared instance.</summary>
    public static SingleProcessGatherer Instance { get; } = new();

    /// <inheritdoc />
    public int Rank => 0;

    /// <inheritdoc />
    public int WorldSize => 1;

    /// <inheritdoc />
    public Tensor AllGather(Tensor local) => local;
}
