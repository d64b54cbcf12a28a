using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MedVlp.Losses;

/// <summary>Input of <see cref="SentenceContrastiveLoss"/>.</summary>
/// <param name="Sentences">Sentence vectors T (B x S x D).</param>
/// <param name="Contexts">Their image contexts c_t (B x S x D) from <see cref="LocalAlignmentModule"/>.</param>
/// <param name="LogitScale">The multiplier s of the cosine similarities (0-d, learnable, PRIOR initialises it to 100).</param>
/// <param name="SentenceMask">Which sentences are real (B x S, bool); null when all are.</param>
public sealed record SentenceContrastiveInput(Tensor Sentences, Tensor Contexts, Tensor LogitScale, Tensor? SentenceMask = null);

/// <summary>
/// PRIOR's text-side local loss: InfoNCE within each report, the report's other sentences being the negatives.
/// Per report with S real sentences, on L2-normalised vectors: logits = s * c_t^ T^^T (S x S),
/// L_report = [CE(logits, arange S) + CE(logits^T, arange S)] / 2; the loss is the mean over reports that have a sentence.
/// </summary>
public sealed class SentenceContrastiveLoss : VlpLoss<SentenceContrastiveInput>
{
    /// <summary>Creates the loss.</summary>
    public SentenceContrastiveLoss()
        : base(nameof(SentenceContrastiveLoss))
    {
    }

    /// <inheritdoc />
    protected override LossOutput ComputeLoss(SentenceContrastiveInput input)
    {
        Check.Rank(input.Sentences, 3, nameof(input.Sentences), "B x S x D");
        Check.SameShape(input.Sentences, nameof(input.Sentences), input.Contexts, nameof(input.Contexts));
        Check.Scalar(input.LogitScale, nameof(input.LogitScale));
        var b = input.Sentences.shape[0];
        var s = input.Sentences.shape[1];
        var sentences = F.normalize(input.Sentences, dim: -1);
        var contexts = F.normalize(input.Contexts, dim: -1);
        var logits = input.LogitScale.reshape([]) * contexts.matmul(sentences.transpose(1, 2)); // (B, S, S): [c_t_i, T_j]
        var mask = input.SentenceMask ?? ones(b, s, dtype: ScalarType.Bool, device: logits.device);
        Check.Rank(mask, 2, nameof(input.SentenceMask), "B x S");

        // Padded sentences are neither negatives (columns) nor anchors (rows).
        var pairMask = mask.unsqueeze(2).logical_and(mask.unsqueeze(1));
        var contextToSentence = RowCrossEntropy(logits, mask, pairMask);
        var sentenceToContext = RowCrossEntropy(logits.transpose(1, 2), mask, pairMask);
        var count = mask.sum(1);
        var valid = count.gt(0);
        var perReport = (contextToSentence + sentenceToContext) / 2;
        var total = perReport.masked_select(valid).mean();
        return new LossOutput(total, [
            new("context_to_sentence", contextToSentence.masked_select(valid).mean()),
            new("sentence_to_context", sentenceToContext.masked_select(valid).mean()),
        ]);
    }

    /// <summary>Per report: mean over real rows i of -log softmax_j(logits[i, j])[i], j over real columns.</summary>
    private static Tensor RowCrossEntropy(Tensor logits, Tensor mask, Tensor pairMask)
    {
        var masked = logits.masked_fill(pairMask.logical_not(), double.NegativeInfinity);
        var logProbabilities = masked.log_softmax(-1).diagonal(0, 1, 2); // (B, S)
        var rowLoss = (-logProbabilities).masked_fill(mask.logical_not(), 0.0);
        return rowLoss.sum(1) / mask.sum(1).clamp_min(1).to_type(logits.dtype);
    }
}
