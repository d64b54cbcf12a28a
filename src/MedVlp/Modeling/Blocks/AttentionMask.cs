using static TorchSharp.torch;

namespace MedVlp.Modeling.Blocks;

/// <summary>
/// Attention masks as boolean tensors broadcastable to (B x heads x queries x keys), <c>true</c> where a query may
/// attend to a key. Combine them with <see cref="And"/>; the attention blocks turn them into additive masks
/// (<see cref="ToAdditive"/>) with the dtype's lowest value, as Hugging Face does, so a fully masked row stays finite.
/// </summary>
public static class AttentionMask
{
    /// <summary>A padding mask from a (B x S) attention mask (1 = token, 0 = padding): (B x 1 x 1 x S).</summary>
    public static Tensor Padding(Tensor attentionMask)
    {
        ArgumentNullException.ThrowIfNull(attentionMask);
        if (attentionMask.Dimensions != 2)
        {
            throw new ArgumentException($"An attention mask is (batch x tokens), got [{string.Join(", ", attentionMask.shape)}].", nameof(attentionMask));
        }

        using var scope = NewDisposeScope();
        return scope.MoveToOuter(attentionMask.ne(0).unsqueeze(1).unsqueeze(1));
    }

    /// <summary>
    /// A causal mask (1 x 1 x Tq x Tk) for <paramref name="queries"/> new tokens after <c>keys - queries</c> cached ones:
    /// query i (at absolute position keys - queries + i) sees keys 0 .. keys - queries + i.
    /// </summary>
    public static Tensor Causal(long queries, long keys, Device? device = null)
    {
        if (queries <= 0 || keys < queries)
        {
            throw new ArgumentException($"A causal mask needs 0 < queries <= keys, got {queries} queries and {keys} keys.");
        }

        using var scope = NewDisposeScope();
        var q = arange(keys - queries, keys, dtype: ScalarType.Int64, device: device).unsqueeze(1);
        var k = arange(keys, dtype: ScalarType.Int64, device: device).unsqueeze(0);
        return scope.MoveToOuter(k.le(q).unsqueeze(0).unsqueeze(0));
    }

    /// <summary>
    /// A prefix-causal (prefix language model) mask (1 x 1 x L x L): every token sees the first
    /// <paramref name="prefix"/> tokens (which see each other bidirectionally); later tokens also see earlier ones.
    /// </summary>
    public static Tensor PrefixCausal(long length, long prefix, Device? device = null)
    {
        if (length <= 0 || prefix < 0 || prefix > length)
        {
            throw new ArgumentException($"A prefix-causal mask needs 0 <= prefix <= length and length > 0, got prefix {prefix} of length {length}.");
        }

        using var scope = NewDisposeScope();
        var q = arange(length, dtype: ScalarType.Int64, device: device).unsqueeze(1);
        var k = arange(length, dtype: ScalarType.Int64, device: device).unsqueeze(0);
        return scope.MoveToOuter(k.le(q).logical_or(k.lt(prefix)).unsqueeze(0).unsqueeze(0));
    }

    /// <summary>Both masks allow (broadcast logical and).</summary>
    public static Tensor And(Tensor first, Tensor second)
    {
        ArgumentNullException.ThrowIfNull(first);
        ArgumentNullException.ThrowIfNull(second);
        return first.logical_and(second);
    }

    /// <summary>A boolean mask as an additive one: 0 where allowed, the lowest finite value of <paramref name="dtype"/> elsewhere.</summary>
    public static Tensor ToAdditive(Tensor allowed, ScalarType dtype)
    {
        ArgumentNullException.ThrowIfNull(allowed);
        using var scope = NewDisposeScope();
        var lowest = finfo(dtype).min;
        var zero = zeros([], dtype, allowed.device);
        var blocked = full([], lowest, dtype, allowed.device);
        return scope.MoveToOuter(where(allowed, zero, blocked));
    }
}
