using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MedVlp.Modeling.Blocks;

/// <summary>
/// The shared core of every attention block: splitting a (B x T x H*D) projection into heads, scaled-dot-product
/// attention (libtorch's fused <c>scaled_dot_product_attention</c>, scale 1/sqrt(D)), and merging heads back.
/// </summary>
public static class AttentionMath
{
    /// <summary>Throws a clear <see cref="ArgumentException"/> unless <paramref name="tokens"/> is (batch x tokens x <paramref name="width"/>).</summary>
    public static void CheckTokens(Tensor tokens, long width, string name)
    {
        ArgumentNullException.ThrowIfNull(tokens, name);
        if (tokens.Dimensions != 3 || tokens.shape[2] != width)
        {
            throw new ArgumentException($"Expected (batch x tokens x {width}) tokens, got [{string.Join(", ", tokens.shape)}].", name);
        }
    }

    /// <summary>(B x T x H*D) to (B x H x T x D).</summary>
    public static Tensor SplitHeads(Tensor x, int heads)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.Dimensions != 3 || x.shape[2] % heads != 0)
        {
            throw new ArgumentException($"Expected a (batch x tokens x width) tensor whose width is a multiple of {heads} heads, got [{string.Join(", ", x.shape)}].", nameof(x));
        }

        return x.view(x.shape[0], x.shape[1], heads, x.shape[2] / heads).transpose(1, 2);
    }

    /// <summary>(B x H x T x D) to (B x T x H*D).</summary>
    public static Tensor MergeHeads(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], x.shape[1] * x.shape[3]);
    }

    /// <summary>
    /// softmax(q k^T / sqrt(D) + mask) v for (B x H x Tq x D) queries and (B x H x Tk x D) keys and values.
    /// </summary>
    /// <param name="query">Queries.</param>
    /// <param name="key">Keys.</param>
    /// <param name="value">Values.</param>
    /// <param name="mask">
    /// Optional mask broadcastable to (B x H x Tq x Tk): boolean (true = may attend, see <see cref="AttentionMask"/>)
    /// or additive (0 = may attend, a large negative number = may not).
    /// </param>
    /// <param name="dropout">Dropout on the attention probabilities (pass 0 outside training).</param>
    public static Tensor Attend(Tensor query, Tensor key, Tensor value, Tensor? mask = null, double dropout = 0)
    {
        ArgumentNullException.ThrowIfNull(query);
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(value);
        using var scope = NewDisposeScope();
        var additive = mask is null ? null : mask.dtype == ScalarType.Bool ? AttentionMask.ToAdditive(mask, query.dtype) : mask.to(query.dtype);
        return scope.MoveToOuter(F.scaled_dot_product_attention(query, key, value, additive, dropout));
    }
}
