using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MedVlp.Losses;

/// <summary>Options of <see cref="QueryContrastiveLoss"/>.</summary>
public sealed class QueryContrastiveLossOptions
{
    /// <summary>Cross-entropy label smoothing in [0, 1); BLIP-2 and MedBLIP use 0.1.</summary>
    public double LabelSmoothing { get; set; } = 0.1;

    /// <summary>How embeddings are collected across processes; null means a single process (BLIP-2 scores local rows against all gathered columns).</summary>
    public IFeatureGatherer? Gatherer { get; set; }
}

/// <summary>
/// BLIP-2 / MedBLIP image-text contrastive loss (ITC) with several query tokens per image:
/// s_i2t[i,j] = s * max_q &lt;z_img[i,q], z_txt[j]&gt;, s_t2i[i,j] = s * max_q &lt;z_txt[i], z_img[j,q]&gt;,
/// L = [CE(s_i2t, arange B) + CE(s_t2i, arange B)] / 2 with label smoothing (0.1 by default).
/// Terms: <c>image_to_text</c>, <c>text_to_image</c>.
/// </summary>
public sealed class QueryContrastiveLoss : VlpLoss<QueryContrastiveInput>
{
    private readonly QueryContrastiveLossOptions options;

    /// <summary>Creates the loss.</summary>
    /// <param name="options">Options; null for the defaults.</param>
    public QueryContrastiveLoss(QueryContrastiveLossOptions? options = null)
        : base(nameof(QueryContrastiveLoss))
    {
        this.options = options ?? new QueryContrastiveLossOptions();
        Check.Smoothing(this.options.LabelSmoothing, nameof(options));
    }

    /// <inheritdoc />
    protected override LossOutput ComputeLoss(QueryContrastiveInput input)
    {
        Check.Rank(input.QueryFeatures, 3, nameof(input.QueryFeatures), "B x Q x D");
        Check.Matrix(input.TextFeatures, nameof(input.TextFeatures));
        Check.Scalar(input.LogitScale, nameof(input.LogitScale));
        var queries = input.QueryFeatures;
        var text = input.TextFeatures;
        if (queries.shape[0] != text.shape[0] || queries.shape[2] != text.shape[1])
        {
            throw new ArgumentException(
                $"QueryFeatures [{string.Join(", ", queries.shape)}] and TextFeatures [{string.Join(", ", text.shape)}] must be B x Q x D and B x D.",
                nameof(input));
        }

        var gatherer = options.Gatherer ?? SingleProcessGatherer.Instance;
        var scale = input.LogitScale.reshape([]);
        var b = queries.shape[0];
        var allQueries = gatherer.WorldSize > 1 ? gatherer.AllGather(queries) : queries;
        var allText = gatherer.WorldSize > 1 ? gatherer.AllGather(text) : text;

        // (B, Q, D) x (D, B') -> (B, Q, B'), max over Q.
        var imageToTextSim = queries.matmul(allText.t()).amax([1]) * scale;

        // (B, D) against (B', Q, D) -> (B, B', Q), max over Q.
        var textToImageSim = einsum("id,jqd->ijq", text, allQueries).amax([2]) * scale;

        var offset = b * gatherer.Rank;
        var labels = arange(offset, offset + b, dtype: ScalarType.Int64, device: text.device);
        var imageToText = F.cross_entropy(imageToTextSim, labels, label_smoothing: options.LabelSmoothing);
        var textToImage = F.cross_entropy(textToImageSim, labels, label_smoothing: options.LabelSmoothing);
        var total = (imageToText + textToImage) / 2;
        return new LossOutput(total, [new("image_to_text", imageToText), new("text_to_image", textToImage)]);
    }
}
