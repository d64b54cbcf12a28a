using System.Collections.Concurrent;
using System.Security.Cryptography;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Modeling;

/// <summary>
/// Outputs of a frozen text encoder per token sequence, keyed by the encoder's weights fingerprint and the row's ids and
/// mask (which carry the tokenization). The cached rows live outside every dispose scope until <see cref="Clear"/>.
/// </summary>
internal sealed class FrozenTextCache
{
    private readonly ConcurrentDictionary<string, Tensor> _rows = new(StringComparer.Ordinal);

    /// <summary>The number of cached sequences.</summary>
    public int Count => _rows.Count;

    /// <summary>The rows for a batch: cached ones as they are, the others computed by <paramref name="compute"/> on the
    /// missing rows only (then cached). Call under <c>no_grad</c>.</summary>
    public Tensor Get(string fingerprint, Tensor inputIds, Tensor attentionMask, Func<Tensor, Tensor, Tensor> compute)
    {
        var b = (int)inputIds.shape[0];
        var t = (int)inputIds.shape[1];
        var ids = inputIds.cpu().to(ScalarType.Int64).contiguous().data<long>().ToArray();
        var mask = attentionMask.cpu().to(ScalarType.Int64).contiguous().data<long>().ToArray();
        var keys = new string[b];
        var missing = new List<int>();
        for (var n = 0; n < b; n++)
        {
            var row = new byte[t * 16];
            Buffer.BlockCopy(ids, n * t * 8, row, 0, t * 8);
            Buffer.BlockCopy(mask, n * t * 8, row, t * 8, t * 8);
            keys[n] = fingerprint + ":" + Convert.ToHexString(SHA256.HashData(row));
            if (!_rows.ContainsKey(keys[n]))
            {
                missing.Add(n);
            }
        }

        if (missing.Count > 0)
        {
            using var scope = NewDisposeScope();
            using var index = tensor(missing.Select(m => (long)m).ToArray(), device: inputIds.device);
            var computed = compute(inputIds.index_select(0, index), attentionMask.index_select(0, index));
            for (var m = 0; m < missing.Count; m++)
            {
                var row = computed[m].detach().clone();
                row.DetachFromDisposeScope();
                if (!_rows.TryAdd(keys[missing[m]], row))
                {
                    row.Dispose();
                }
            }
        }

        return stack(keys.Select(k => _rows[k]).ToArray());
    }

    /// <summary>Disposes every cached row.</summary>
    public void Clear()
    {
        foreach (var key in _rows.Keys)
        {
            if (_rows.TryRemove(key, out var t))
            {
                t.Dispose();
            }
        }
    }
}
