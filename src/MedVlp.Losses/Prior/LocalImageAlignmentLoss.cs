using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MedVlp.Losses;

/// <summary>
/// PRIOR's image-side local loss, SimSiam style, with a predictor p = Linear(D, D/2) -> ReLU -> Linear(D/2, D):
/// L = -1/2 [ mean cos(p(I), stopgrad(c_i)) + mean cos(p(c_i), stopgrad(I)) ], the means over all B x N tokens.
/// Input: <see cref="EmbeddingPair.ImageFeatures"/> = the image tokens I (B x N x D),
/// <see cref="EmbeddingPair.TextFeatures"/> = their text context c_i (B x N x D) from <see cref="LocalAlignmentModule"/>.
/// </summary>
public sealed class LocalImageAlignmentLoss : VlpLoss<EmbeddingPair>
{
#pragma warning disable IDE1006 // PyTorch field name.
    private readonly Sequential? predictor;
#pragma warning restore IDE1006
    private readonly Func<Tensor, Tensor> _predict;

    /// <summary>Creates the loss and its predictor.</summary>
    /// <param name="dimension">The embedding width D (PRIOR: 768).</param>
    public LocalImageAlignmentLoss(int dimension = 768)
        : base(nameof(LocalImageAlignmentLoss))
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(dimension, 2);
        predictor = nn.Sequential(nn.Linear(dimension, dimension / 2), nn.ReLU(), nn.Linear(dimension / 2, dimension));
        _predict = predictor.forward;
        RegisterComponents();
    }

    /// <summary>
    /// Creates the loss around a predictor owned by a model (PRIOR's model holds <c>predictor</c> in its state dict): the
    /// loss then has no parameters of its own, so an optimizer given the model's and the loss's parameters sees each once.
    /// </summary>
    /// <param name="predictor">The predictor p (D to D).</param>
    public LocalImageAlignmentLoss(Func<Tensor, Tensor> predictor)
        : base(nameof(LocalImageAlignmentLoss))
    {
        ArgumentNullException.ThrowIfNull(predictor);
        _predict = predictor;
        RegisterComponents();
    }

    /// <summary>The predictor p (trained with the loss).</summary>
    /// <exception cref="InvalidOperationException">The predictor belongs to a model (the constructor taking a function).</exception>
    public Sequential Predictor => predictor ?? throw new InvalidOperationException("This loss uses a predictor owned by a model; it has none of its own.");

    /// <inheritdoc />
    protected override LossOutput ComputeLoss(EmbeddingPair input)
    {
        Check.SameShape(input.ImageFeatures, nameof(input.ImageFeatures), input.TextFeatures, nameof(input.TextFeatures));
        var image = input.ImageFeatures;
        var context = input.TextFeatures;
        var imageToContext = F.cosine_similarity(_predict(image), context.detach(), dim: -1).mean();
        var contextToImage = F.cosine_similarity(_predict(context), image.detach(), dim: -1).mean();
        var total = -0.5 * (imageToContext + contextToImage);
        return new LossOutput(total, [new("cos_image_to_context", imageToContext), new("cos_context_to_image", contextToImage)]);
    }
}
