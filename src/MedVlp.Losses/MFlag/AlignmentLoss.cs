using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MedVlp.Losses;

/// <summary>Options of <see cref="AlignmentLoss"/>.</summary>
public sealed class AlignmentLossOptions
{
    /// <summary>L2-normalise both embeddings first (M-FLAG does, on the projector outputs).</summary>
    public bool Normalize { get; set; } = true;
}

/// <summary>
/// M-FLAG's alignment loss without negatives: with x, y the (normalised) image and text embeddings,
/// L = mean over the batch of (2 - 2 &lt;x, y&gt;) + (2 - 2 &lt;y, x&gt;) = mean(4 - 4 cos(x, y)).
/// </summary>
public sealed class AlignmentLoss : VlpLoss<EmbeddingPair>
{
    private readonly AlignmentLossOptions options;

    /// <summary>Creates the loss.</summary>
    /// <param name="options">Options; null for the defaults.</param>
    public AlignmentLoss(AlignmentLossOptions? options = null)
        : base(nameof(AlignmentLoss))
    {
        this.options = options ?? new AlignmentLossOptions();
    }

    /// <inheritdoc />
    protected override LossOutput ComputeLoss(EmbeddingPair input)
    {
        Check.Matrix(input.ImageFeatures, nameof(input.ImageFeatures));
        Check.Matrix(input.TextFeatures, nameof(input.TextFeatures));
        Check.SameShape(input.ImageFeatures, nameof(input.ImageFeatures), input.TextFeatures, nameof(input.TextFeatures));
        var x = options.Normalize ? F.normalize(input.ImageFeatures, dim: -1) : input.ImageFeatures;
        var y = options.Normalize ? F.normalize(input.TextFeatures, dim: -1) : input.TextFeatures;
        var xy = (x * y).sum(-1);
        var yx = (y * x).sum(-1);
        var total = ((2 - (2 * xy)) + (2 - (2 * yx))).mean();
        return new LossOutput(total);
    }
}
