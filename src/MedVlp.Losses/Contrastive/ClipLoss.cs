using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MedVlp.Losses;

/// <summary>
/// CLIP's symmetric InfoNCE (open_clip <c>ClipLoss</c>): logits = s * I T^T,
/// L = [CE(logits, arange B) + CE(logits^T, arange B)] / 2, with s the exponentiated learnable logit scale
/// passed in by the model. Terms: <c>image_to_text</c>, <c>text_to_image</c>.
/// </summary>
/// <remarks>
/// With a multi-process <see cref="ClipLossOptions.Gatherer"/> the features are gathered first; with
/// <see cref="ClipLossOptions.LocalLoss"/> each process scores its own rows against all columns, labels offset by rank.
/// For batches whose B x B logits do not fit, use <c>ChunkedClipLoss</c>, which gives the same value and gradients.
/// </remarks>
public sealed class ClipLoss : VlpLoss<ContrastiveInput>
{
    private readonly ClipLossOptions options;

    /// <summary>Creates the loss.</summary>
    /// <param name="options">Options; null for the defaults.</param>
    public ClipLoss(ClipLossOptions? options = null)
        : base(nameof(ClipLoss))
    {
        this.options = options ?? new ClipLossOptions();
        Check.Smoothing(this.options.LabelSmoothing, nameof(options));
    }

    /// <inheritdoc />
    protected override LossOutput ComputeLoss(ContrastiveInput input)
    {
        Check.Matrix(input.ImageFeatures, nameof(input.ImageFeatures));
        Check.Matrix(input.TextFeatures, nameof(input.TextFeatures));
        Check.SameShape(input.ImageFeatures, nameof(input.ImageFeatures), input.TextFeatures, nameof(input.TextFeatures));
        Check.Scalar(input.LogitScale, nameof(input.LogitScale));

        var gatherer = options.Gatherer ?? SingleProcessGatherer.Instance;
        var image = input.ImageFeatures;
        var text = input.TextFeatures;
        var scale = input.LogitScale.reshape([]);
        Tensor logitsPerImage, logitsPerText;
        long labelOffset = 0;
        if (gatherer.WorldSize > 1)
        {
            var allImage = gatherer.AllGather(image);
            var allText = gatherer.AllGather(text);
            if (options.LocalLoss)
            {
                logitsPerImage = scale * image.matmul(allText.t());
                logitsPerText = scale * text.matmul(allImage.t());
                labelOffset = image.shape[0] * gatherer.Rank;
            }
            else
            {
                logitsPerImage = scale * allImage.matmul(allText.t());
                logitsPerText = logitsPerImage.t();
            }
        }
        else
        {
            logitsPerImage = scale * image.matmul(text.t());
            logitsPerText = logitsPerImage.t();
        }

        var labels = arange(labelOffset, labelOffset + logitsPerImage.shape[0], dtype: ScalarType.Int64, device: image.device);
        var imageToText = F.cross_entropy(logitsPerImage, labels, label_smoothing: options.LabelSmoothing);
        var textToImage = F.cross_entropy(logitsPerText, labels, label_smoothing: options.LabelSmoothing);
        var total = (imageToText + textToImage) / 2;
        return new LossOutput(total, [new("image_to_text", imageToText), new("text_to_image", textToImage)]);
    }
}
