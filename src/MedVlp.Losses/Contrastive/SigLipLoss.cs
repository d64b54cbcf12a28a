using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MedVlp.Losses;

/// <summary>Options of <see cref="SigLipLoss"/>.</summary>
public sealed class SigLipLossOptions
{
    /// <summary>How embeddings are collected across processes; null means a single process. Other processes' texts are negatives only.</summary>
    public IFeatureGatherer? Gatherer { get; set; }
}

/// <summary>
/// SigLIP's pairwise sigmoid loss (open_clip <c>SigLipLoss</c>): logits = s * I T^T + b,
/// labels = 2 * eye(B) - 1, L = -sum(log sigmoid(labels * logits)) / B.
/// Needs <see cref="ContrastiveInput.LogitBias"/>; s and b are learnable parameters owned by the model
/// (SigLIP initialises log s = log 10 and b = -10).
/// </summary>
public sealed class SigLipLoss : VlpLoss<ContrastiveInput>
{
    private readonly SigLipLossOptions options;

    /// <summary>Creates the loss.</summary>
    /// <param name="options">Options; null for the defaults.</param>
    public SigLipLoss(SigLipLossOptions? options = null)
        : base(nameof(SigLipLoss))
    {
        this.options = options ?? new SigLipLossOptions();
    }

    /// <inheritdoc />
    protected override LossOutput ComputeLoss(ContrastiveInput input)
    {
        Check.Matrix(input.ImageFeatures, nameof(input.ImageFeatures));
        Check.Matrix(input.TextFeatures, nameof(input.TextFeatures));
        Check.SameShape(input.ImageFeatures, nameof(input.ImageFeatures), input.TextFeatures, nameof(input.TextFeatures));
        Check.Scalar(input.LogitScale, nameof(input.LogitScale));
        if (input.LogitBias is null)
        {
            throw new ArgumentException("SigLipLoss needs ContrastiveInput.LogitBias (a learnable scalar owned by the model).", nameof(input));
        }

        Check.Scalar(input.LogitBias, nameof(input.LogitBias));
        var gatherer = options.Gatherer ?? SingleProcessGatherer.Instance;
        var image = input.ImageFeatures;
        var n = image.shape[0];
        var text = gatherer.WorldSize > 1 ? gatherer.AllGather(input.TextFeatures) : input.TextFeatures;
        var logits = (input.LogitScale.reshape([]) * image.matmul(text.t())) + input.LogitBias.reshape([]);

        // -1 everywhere, +1 on the positive pairs (this process's block of the gathered texts).
        var labels = full(n, text.shape[0], -1.0, dtype: logits.dtype, device: logits.device);
        labels.narrow(1, n * gatherer.Rank, n).add_(eye(n, dtype: logits.dtype, device: logits.device).mul_(2));
        var total = -F.logsigmoid(labels * logits).sum() / n;
        return new LossOutput(total);
    }
}
