using System.Numerics.Tensors;

namespace MedVlp.Losses;

/// <summary>
/// CPU evaluation paths for inference without autograd (retrieval, zero-shot scoring, validation losses), on
/// row-major <see cref="float"/> spans with SIMD kernels from <see cref="TensorPrimitives"/>: L2 normalisation,
/// similarity matrices, row-wise softmax, the symmetric InfoNCE value and top-k. They agree with the TorchSharp
/// losses (<see cref="ClipLoss"/>) to float precision; nothing here allocates native memory.
/// </summary>
public static class Similarity
{
    /// <summary>L2-normalises each row of a row-major matrix in place (rows of norm 0 are left as they are).</summary>
    /// <param name="matrix">The matrix, <c>rows x dimension</c>.</param>
    /// <param name="dimension">The row length.</param>
    public static void NormalizeRows(Span<float> matrix, int dimension)
    {
        var rows = Rows(matrix.Length, dimension, nameof(matrix));
        for (var r = 0; r < rows; r++)
        {
            var row = matrix.Slice(r * dimension, dimension);
            var norm = TensorPrimitives.Norm(row);
            if (norm > 0)
            {
                TensorPrimitives.Divide(row, norm, row);
            }
        }
    }

    /// <summary>The dot-product matrix S[i, j] = scale * &lt;a_i, b_j&gt; of two row-major matrices.</summary>
    /// <param name="a">The first matrix, <c>n x dimension</c> (e.g. image embeddings).</param>
    /// <param name="b">The second matrix, <c>m x dimension</c> (e.g. text embeddings).</param>
    /// <param name="dimension">The embedding width.</param>
    /// <param name="destination">Receives S, <c>n x m</c>, row-major.</param>
    /// <param name="scale">A factor applied to every entry (e.g. the CLIP logit scale); 1 for plain dot products.</param>
    public static void DotProducts(ReadOnlySpan<float> a, ReadOnlySpan<float> b, int dimension, Span<float> destination, float scale = 1f)
    {
        var n = Rows(a.Length, dimension, nameof(a));
        var m = Rows(b.Length, dimension, nameof(b));
        CheckDestination(destination.Length, (long)n * m, nameof(destination));
        for (var i = 0; i < n; i++)
        {
            var row = a.Slice(i * dimension, dimension);
            var target = destination.Slice(i * m, m);
            for (var j = 0; j < m; j++)
            {
                target[j] = TensorPrimitives.Dot(row, b.Slice(j * dimension, dimension));
            }

            if (scale != 1f)
            {
                TensorPrimitives.Multiply(target, scale, target);
            }
        }
    }

    /// <summary>The cosine-similarity matrix S[i, j] = cos(a_i, b_j) (rows of norm 0 give 0).</summary>
    /// <param name="a">The first matrix, <c>n x dimension</c>.</param>
    /// <param name="b">The second matrix, <c>m x dimension</c>.</param>
    /// <param name="dimension">The embedding width.</param>
    /// <param name="destination">Receives S, <c>n x m</c>, row-major.</param>
    public static void CosineSimilarities(ReadOnlySpan<float> a, ReadOnlySpan<float> b, int dimension, Span<float> destination)
    {
        var n = Rows(a.Length, dimension, nameof(a));
        var m = Rows(b.Length, dimension, nameof(b));
        CheckDestination(destination.Length, (long)n * m, nameof(destination));
        var normsB = new float[m];
        for (var j = 0; j < m; j++)
        {
            normsB[j] = TensorPrimitives.Norm(b.Slice(j * dimension, dimension));
        }

        DotProducts(a, b, dimension, destination);
        for (var i = 0; i < n; i++)
        {
            var normA = TensorPrimitives.Norm(a.Slice(i * dimension, dimension));
            var target = destination.Slice(i * m, m);
            for (var j = 0; j < m; j++)
            {
                var denominator = normA * normsB[j];
                target[j] = denominator > 0 ? target[j] / denominator : 0f;
            }
        }
    }

    /// <summary>Row-wise softmax of <c>scale * logits</c> (numerically stable), e.g. zero-shot class probabilities.</summary>
    /// <param name="logits">The logits, <c>rows x columns</c>, row-major.</param>
    /// <param name="columns">The row length.</param>
    /// <param name="destination">Receives the probabilities (may be the same memory as <paramref name="logits"/>).</param>
    /// <param name="scale">A factor applied before the softmax (a logit scale, or 1 / temperature).</param>
    public static void SoftmaxRows(ReadOnlySpan<float> logits, int columns, Span<float> destination, float scale = 1f)
    {
        var rows = Rows(logits.Length, columns, nameof(logits));
        CheckDestination(destination.Length, logits.Length, nameof(destination));
        for (var r = 0; r < rows; r++)
        {
            var target = destination.Slice(r * columns, columns);
            TensorPrimitives.Multiply(logits.Slice(r * columns, columns), scale, target);
            TensorPrimitives.SoftMax(target, target);
        }
    }

    /// <summary>
    /// The symmetric InfoNCE (CLIP) loss value of paired embeddings: logits = scale * I T^T,
    /// [CE(logits, arange B) + CE(logits^T, arange B)] / 2 with label smoothing, as <see cref="ClipLoss"/> computes it.
    /// </summary>
    /// <param name="image">Image embeddings, <c>B x dimension</c> (normalised by the caller, as for <see cref="ClipLoss"/>).</param>
    /// <param name="text">Text embeddings, <c>B x dimension</c>.</param>
    /// <param name="dimension">The embedding width.</param>
    /// <param name="logitScale">The (exponentiated) logit scale.</param>
    /// <param name="labelSmoothing">Label smoothing in [0, 1).</param>
    /// <returns>The loss value.</returns>
    public static double InfoNce(ReadOnlySpan<float> image, ReadOnlySpan<float> text, int dimension, float logitScale, double labelSmoothing = 0)
    {
        var b = Rows(image.Length, dimension, nameof(image));
        if (Rows(text.Length, dimension, nameof(text)) != b)
        {
            throw new ArgumentException($"image has {b} rows but text has {text.Length / dimension}; InfoNCE needs pairs.", nameof(text));
        }

        if (!(labelSmoothing >= 0 && labelSmoothing < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(labelSmoothing), labelSmoothing, "Label smoothing must be in [0, 1).");
        }

        if (b == 0)
        {
            throw new ArgumentException("InfoNCE needs at least one pair.", nameof(image));
        }

        var logits = new float[b * b];
        DotProducts(image, text, dimension, logits, logitScale);
        var transposed = new float[b * b];
        for (var i = 0; i < b; i++)
        {
            for (var j = 0; j < b; j++)
            {
                transposed[(j * b) + i] = logits[(i * b) + j];
            }
        }

        return (RowCrossEntropy(logits, b, labelSmoothing) + RowCrossEntropy(transposed, b, labelSmoothing)) / 2;
    }

    /// <summary>The indices of the <paramref name="k"/> largest scores, largest first (ties: lower index first; NaN last).</summary>
    /// <param name="scores">The scores.</param>
    /// <param name="k">How many (at most the number of scores).</param>
    /// <returns>The indices.</returns>
    public static int[] TopK(ReadOnlySpan<float> scores, int k)
    {
        var result = new int[k];
        TopK(scores, k, result);
        return result;
    }

    /// <summary>The indices of the <paramref name="k"/> largest scores, largest first (ties: lower index first; NaN last).</summary>
    /// <param name="scores">The scores.</param>
    /// <param name="k">How many (at most the number of scores).</param>
    /// <param name="destination">Receives the <paramref name="k"/> indices.</param>
    public static void TopK(ReadOnlySpan<float> scores, int k, Span<int> destination)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(k, scores.Length);
        CheckDestination(destination.Length, k, nameof(destination));
        if (k == 0)
        {
            return;
        }

        // Keep the best k in destination, sorted, by insertion: O(n k), fast for the small k of retrieval.
        var count = 0;
        for (var i = 0; i < scores.Length; i++)
        {
            var score = scores[i];
            if (count == k && !Better(score, i, scores[destination[k - 1]], destination[k - 1]))
            {
                continue;
            }

            var position = count < k ? count++ : k - 1;
            while (position > 0 && Better(score, i, scores[destination[position - 1]], destination[position - 1]))
            {
                destination[position] = destination[position - 1];
                position--;
            }

            destination[position] = i;
        }
    }

    /// <summary>Row-wise top-k of a score matrix (e.g. retrieval of the best texts for each image).</summary>
    /// <param name="scores">The scores, <c>rows x columns</c>, row-major.</param>
    /// <param name="columns">The row length.</param>
    /// <param name="k">How many per row.</param>
    /// <param name="destination">Receives <c>rows x k</c> indices, row-major.</param>
    public static void TopKRows(ReadOnlySpan<float> scores, int columns, int k, Span<int> destination)
    {
        var rows = Rows(scores.Length, columns, nameof(scores));
        CheckDestination(destination.Length, (long)rows * k, nameof(destination));
        for (var r = 0; r < rows; r++)
        {
            TopK(scores.Slice(r * columns, columns), k, destination.Slice(r * k, k));
        }
    }

    private static bool Better(float score, int index, float other, int otherIndex)
    {
        if (float.IsNaN(score))
        {
            return false;
        }

        return float.IsNaN(other) || score > other || (score == other && index < otherIndex);
    }

    /// <summary>mean_i [ logsumexp_j l_ij - (1 - eps) l_ii - eps/n sum_j l_ij ] in double precision.</summary>
    private static double RowCrossEntropy(ReadOnlySpan<float> logits, int n, double smoothing)
    {
        var total = 0.0;
        var shifted = new float[n];
        for (var i = 0; i < n; i++)
        {
            var row = logits.Slice(i * n, n);
            var max = TensorPrimitives.Max(row);
            TensorPrimitives.Subtract(row, max, shifted);
            TensorPrimitives.Exp(shifted, shifted);
            var logSumExp = max + Math.Log(TensorPrimitives.Sum<float>(shifted));
            var loss = logSumExp - ((1 - smoothing) * row[i]);
            if (smoothing != 0)
            {
                loss -= smoothing / n * TensorPrimitives.Sum(row);
            }

            total += loss;
        }

        return total / n;
    }

    private static int Rows(int length, int dimension, string name)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(dimension, 1);
        return length % dimension == 0
            ? length / dimension
            : throw new ArgumentException($"{name} has {length} values, not a whole number of rows of {dimension}.", name);
    }

    private static void CheckDestination(int length, long needed, string name)
    {
        if (length < needed)
        {
            throw new ArgumentException($"{name} holds {length} values but {needed} are needed.", name);
        }
    }
}
