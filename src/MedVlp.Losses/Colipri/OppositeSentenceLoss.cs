using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MedVlp.Losses;

/// <summary>
/// Inputs of <see cref="OppositeSentenceLoss"/>: per image and finding, the embeddings of an affirmative sentence
/// ("Pleural effusion.") and of its negation ("No pleural effusion."), and which of the two the report supports.
/// </summary>
/// <param name="ImageFeatures">L2-normalised image embeddings, B x E.</param>
/// <param name="SentenceFeatures">L2-normalised sentence embeddings, B x F x 2 x E: index 0 affirms the finding, index 1 negates it.</param>
/// <param name="Labels">B x F (int64): 1 = the finding is present (the affirmative sentence is true), 0 = absent (the
/// negation is true), -1 = unknown (the report says nothing; ignored).</param>
/// <param name="LogitScale">The multiplier of the cosine similarities (a 0-d tensor, usually exp of a learned log scale).</param>
public sealed record OppositeSentenceInput(Tensor ImageFeatures, Tensor SentenceFeatures, Tensor Labels, Tensor LogitScale);

/// <summary>
/// COLIPRI's opposite-sentence objective for negated findings. The paper names it but does not publish its formula;
/// this is MedVlp's documented design: for every image and every finding with a known label, the image is scored
/// against the affirmative and the negated sentence (<c>s * cos</c>), and a two-way cross-entropy asks the true
/// sentence to win: <c>L = mean over (b, f) with label != -1 of CE([s cos(i_b, a_bf), s cos(i_b, n_bf)], 1 - y_bf)</c>.
/// It is exactly the training form of COLIPRI's zero-shot rule (softmax over a positive / negative prompt pair), so the
/// model learns the decision it is evaluated with, and it forces the text tower to separate a sentence from its
/// negation, which plain contrastive training on whole reports does not. Returns 0 (with a gradient path) when no
/// label is known.
/// </summary>
public sealed class OppositeSentenceLoss : VlpLoss<OppositeSentenceInput>
{
    /// <summary>Creates the loss.</summary>
    public OppositeSentenceLoss()
        : base(nameof(OppositeSentenceLoss))
    {
    }

    /// <inheritdoc/>
    protected override LossOutput ComputeLoss(OppositeSentenceInput input)
    {
        Check.Matrix(input.ImageFeatures, nameof(input.ImageFeatures));
        Check.Rank(input.SentenceFeatures, 4, nameof(input.SentenceFeatures), "B x F x 2 x E");
        Check.Rank(input.Labels, 2, nameof(input.Labels), "B x F");
        Check.Scalar(input.LogitScale, nameof(input.LogitScale));
        var (b, e) = (input.ImageFeatures.shape[0], input.ImageFeatures.shape[1]);
        var s = input.SentenceFeatures.shape;
        if (s[0] != b || s[2] != 2 || s[3] != e || input.Labels.shape[0] != b || input.Labels.shape[1] != s[1])
        {
            throw new ArgumentException(
                $"Opposite-sentence inputs disagree: images [{b}, {e}], sentences [{string.Join(", ", s)}] (expected [{b}, F, 2, {e}]), labels [{string.Join(", ", input.Labels.shape)}] (expected [{b}, F]).");
        }

        // B x F x 2 logits: image b against finding f's affirmative (0) and negated (1) sentence.
        var logits = input.LogitScale.reshape([]) * einsum("be,bfke->bfk", input.ImageFeatures, input.SentenceFeatures);
        var labels = input.Labels.to(ScalarType.Int64);
        var known = labels.ge(0);
        var target = (1 - labels.clamp_min(0)).masked_fill(known.logical_not(), -100); // class 0 = affirmative
        var perPair = F.cross_entropy(logits.reshape(-1, 2), target.reshape(-1), reduction: nn.Reduction.None, ignore_index: -100);
        var count = known.sum().to(logits.dtype);
        var loss = perPair.sum() / count.clamp_min(1);
        var correct = (logits.argmax(-1).eq(target) & known).sum().to(logits.dtype) / count.clamp_min(1);
        return new LossOutput(loss, [new("opposite_sentence", loss), new("opposite_sentence_accuracy", correct.detach())]);
    }
}
