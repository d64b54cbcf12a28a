using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MedVlp.Losses;

/// <summary>Inputs of <see cref="CausalLanguageModelingLoss"/>.</summary>
/// <param name="Logits">Next-token logits, B x T x V (position t predicts token t + 1).</param>
/// <param name="Labels">Token ids, B x T (int64); <see cref="CausalLanguageModelingLoss.IgnoreIndex"/> marks positions that are not scored (padding, prompts, image tokens).</param>
public sealed record LanguageModelingInput(Tensor Logits, Tensor Labels);

/// <summary>
/// The teacher-forced language-modelling loss of decoders (report generation, MedBLIP's language model): cross-entropy
/// of logits at position t against the label at t + 1, averaged over scored positions, as Hugging Face's
/// <c>GPT2LMHeadModel</c> computes it.
/// </summary>
public sealed class CausalLanguageModelingLoss : VlpLoss<LanguageModelingInput>
{
    /// <summary>The label value of positions that are not scored (-100, as PyTorch and Hugging Face).</summary>
    public const long IgnoreIndex = -100;

    private readonly double labelSmoothing;

    /// <summary>Creates the loss.</summary>
    /// <param name="labelSmoothing">Label smoothing in [0, 1) (default 0).</param>
    public CausalLanguageModelingLoss(double labelSmoothing = 0)
        : base(nameof(CausalLanguageModelingLoss))
    {
        Check.Smoothing(labelSmoothing, nameof(labelSmoothing));
        this.labelSmoothing = labelSmoothing;
    }

    /// <inheritdoc/>
    protected override LossOutput ComputeLoss(LanguageModelingInput input)
    {
        Check.Rank(input.Logits, 3, nameof(input.Logits), "B x T x V");
        Check.Rank(input.Labels, 2, nameof(input.Labels), "B x T");
        if (input.Labels.shape[0] != input.Logits.shape[0] || input.Labels.shape[1] != input.Logits.shape[1])
        {
            throw new ArgumentException($"Labels [{string.Join(", ", input.Labels.shape)}] do not match the logits [{string.Join(", ", input.Logits.shape)}].");
        }

        var t = input.Logits.shape[1];
        var logits = input.Logits.narrow(1, 0, t - 1).reshape(-1, input.Logits.shape[2]);
        var labels = input.Labels.narrow(1, 1, t - 1).reshape(-1).to(ScalarType.Int64);
        var loss = F.cross_entropy(logits, labels, ignore_index: IgnoreIndex, label_smoothing: labelSmoothing);
        return new LossOutput(loss, [new("language_modeling", loss)]);
    }
}
