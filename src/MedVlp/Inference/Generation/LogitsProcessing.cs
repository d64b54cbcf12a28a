using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Inference.Generation;

/// <summary>
/// Hugging Face's logits processors and warpers on next-token scores (rows x vocabulary), each returning new scores with
/// removed tokens at -inf: <c>RepetitionPenaltyLogitsProcessor</c>, <c>TemperatureLogitsWarper</c>,
/// <c>TopKLogitsWarper</c> and <c>TopPLogitsWarper</c> (with <c>min_tokens_to_keep</c>).
/// </summary>
public static class LogitsProcessing
{
    /// <summary>Scores of tokens in <paramref name="previous"/> (rows x n, int64) become score / penalty when positive and score x penalty otherwise.</summary>
    public static Tensor RepetitionPenalty(Tensor scores, Tensor previous, double penalty)
    {
        ArgumentNullException.ThrowIfNull(scores);
        ArgumentNullException.ThrowIfNull(previous);
        using var scope = NewDisposeScope();
        var picked = scores.gather(1, previous);
        var penalised = where(picked.lt(0), picked * penalty, picked / penalty);
        return scope.MoveToOuter(scores.scatter(1, previous, penalised));
    }

    /// <summary>Scores divided by the temperature.</summary>
    public static Tensor Temperature(Tensor scores, double temperature)
    {
        ArgumentNullException.ThrowIfNull(scores);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(temperature);
        return scores / temperature;
    }

    /// <summary>Keeps the max(<paramref name="topK"/>, <paramref name="minTokensToKeep"/>) best scores of each row (ties with the k-th kept too).</summary>
    public static Tensor TopK(Tensor scores, int topK, int minTokensToKeep = 1)
    {
        ArgumentNullException.ThrowIfNull(scores);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(topK);
        using var scope = NewDisposeScope();
        var k = Math.Min(Math.Max(topK, minTokensToKeep), scores.shape[^1]);
        var kth = scores.topk((int)k, -1).values.narrow(-1, k - 1, 1);
        return scope.MoveToOuter(scores.masked_fill(scores.lt(kth), double.NegativeInfinity));
    }

    /// <summary>
    /// Nucleus filtering: sorts each row ascending, removes the tokens whose cumulative probability is at most 1 - p,
    /// never the <paramref name="minTokensToKeep"/> most likely ones.
    /// </summary>
    public static Tensor TopP(Tensor scores, double topP, int minTokensToKeep = 1)
    {
        ArgumentNullException.ThrowIfNull(scores);
        if (!(topP > 0 && topP <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(topP), topP, "Top-p must be in (0, 1].");
        }

        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(minTokensToKeep);
        using var scope = NewDisposeScope();
        var (sorted, indices) = scores.sort(-1, descending: false);
        var cumulative = sorted.softmax(-1).cumsum(-1);
        var remove = cumulative.le(1 - topP);
        var keep = Math.Min(minTokensToKeep, scores.shape[^1]);
        remove.narrow(-1, scores.shape[^1] - keep, keep).fill_(false);
        var removeOriginal = remove.scatter(-1, indices, remove);
        return scope.MoveToOuter(scores.masked_fill(removeOriginal, double.NegativeInfinity));
    }

    /// <summary>The sampling warpers of <paramref name="options"/> in Hugging Face's order: temperature, top-k, top-p.</summary>
    public static Tensor Warp(Tensor scores, GenerationOptions options)
    {
        ArgumentNullException.ThrowIfNull(scores);
        ArgumentNullException.ThrowIfNull(options);
        using var scope = NewDisposeScope();
        var x = scores;
        if (options.Temperature != 1.0)
        {
            x = Temperature(x, options.Temperature);
        }

        if (options.TopK is { } k)
        {
            x = TopK(x, k, options.MinTokensToKeep);
        }

        if (options.TopP < 1.0)
        {
            x = TopP(x, options.TopP, options.MinTokensToKeep);
        }

        return scope.MoveToOuter(x.alias());
    }
}
