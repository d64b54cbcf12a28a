namespace MedVlp.Inference.Generation;

/// <summary>
/// How <see cref="TextGenerator"/> decodes, with Hugging Face's meanings: greedy by default; <see cref="DoSample"/> draws
/// each token after the repetition penalty, <see cref="Temperature"/>, <see cref="TopK"/> and <see cref="TopP"/> (in that
/// order, as <c>generate</c> chains its processors and warpers); <see cref="NumBeams"/> &gt; 1 runs beam search scored by
/// the sum of log-probabilities divided by (generated length)^<see cref="LengthPenalty"/>.
/// </summary>
public sealed class GenerationOptions
{
    /// <summary>The most new tokens (also bounded by the model's positions). Default 64.</summary>
    public int MaxNewTokens { get; init; } = 64;

    /// <summary>Sample the tokens instead of taking the most likely one. Default false.</summary>
    public bool DoSample { get; init; }

    /// <summary>Divides the logits before sampling (&gt; 0). Default 1.</summary>
    public double Temperature { get; init; } = 1.0;

    /// <summary>Keep only the k most likely tokens when sampling (null: all).</summary>
    public int? TopK { get; init; }

    /// <summary>Keep the smallest set of most likely tokens whose probability reaches p when sampling (1: all). Default 1.</summary>
    public double TopP { get; init; } = 1.0;

    /// <summary>Top-k and top-p never keep fewer tokens than this. Default 1.</summary>
    public int MinTokensToKeep { get; init; } = 1;

    /// <summary>Hugging Face's repetition penalty on tokens already generated (1: none; &gt; 1 discourages repeats). Default 1.</summary>
    public double RepetitionPenalty { get; init; } = 1.0;

    /// <summary>Beams of beam search (1: no beam search). Default 1.</summary>
    public int NumBeams { get; init; } = 1;

    /// <summary>Exponent of the generated length that divides a beam's summed log-probability. Default 1.</summary>
    public double LengthPenalty { get; init; } = 1.0;

    /// <summary>Beam search stops as soon as <see cref="NumBeams"/> hypotheses are finished (true) or when no open beam can
    /// beat them by Hugging Face's heuristic (false, the default).</summary>
    public bool EarlyStopping { get; init; }

    /// <summary>Seed of the sampling generator; the same seed gives the same text. Null: a fresh random seed.</summary>
    public long? Seed { get; init; }

    /// <summary>Generation stops when the decoded text contains one of these; the text is cut before it.</summary>
    public IReadOnlyList<string> StopSequences { get; init; } = [];

    /// <summary>Checks the values and throws an <see cref="ArgumentException"/> naming the first wrong one.</summary>
    public void Validate()
    {
        static void Fail(string name, object value, string expected) =>
            throw new ArgumentException($"GenerationOptions.{name} must be {expected}, got {value}.");
        if (MaxNewTokens < 1)
        {
            Fail(nameof(MaxNewTokens), MaxNewTokens, ">= 1");
        }

        if (!(Temperature > 0) || double.IsInfinity(Temperature))
        {
            Fail(nameof(Temperature), Temperature, "a finite number > 0");
        }

        if (TopK is < 1)
        {
            Fail(nameof(TopK), TopK, ">= 1 or null");
        }

        if (!(TopP > 0 && TopP <= 1))
        {
            Fail(nameof(TopP), TopP, "in (0, 1]");
        }

        if (MinTokensToKeep < 1)
        {
            Fail(nameof(MinTokensToKeep), MinTokensToKeep, ">= 1");
        }

        if (!(RepetitionPenalty > 0) || double.IsInfinity(RepetitionPenalty))
        {
            Fail(nameof(RepetitionPenalty), RepetitionPenalty, "a finite number > 0");
        }

        if (NumBeams < 1)
        {
            Fail(nameof(NumBeams), NumBeams, ">= 1");
        }

        if (NumBeams > 1 && DoSample)
        {
            Fail(nameof(NumBeams), NumBeams, "1 when sampling (beam sampling is not supported)");
        }

        if (!double.IsFinite(LengthPenalty))
        {
            Fail(nameof(LengthPenalty), LengthPenalty, "finite");
        }

        if (StopSequences is null || StopSequences.Any(string.IsNullOrEmpty))
        {
            Fail(nameof(StopSequences), "an empty or null entry", "non-empty strings");
        }
    }
}

/// <summary>Why generation ended.</summary>
public enum GenerationFinishReason
{
    /// <summary>The model produced its end-of-sequence token.</summary>
    EndOfSequence,

    /// <summary>The text reached a stop sequence.</summary>
    StopSequence,

    /// <summary>The most new tokens were generated (or the model's positions ran out).</summary>
    Length,
}

/// <summary>A generated text.</summary>
/// <param name="Text">The decoded text, cut before a stop sequence.</param>
/// <param name="TokenIds">The generated tokens without the end-of-sequence token (those of a stop sequence included).</param>
/// <param name="FinishReason">Why generation ended.</param>
/// <param name="Score">Beam search: the best hypothesis' length-penalised log-probability; otherwise null.</param>
public sealed record GeneratedText(string Text, IReadOnlyList<int> TokenIds, GenerationFinishReason FinishReason, double? Score = null);
