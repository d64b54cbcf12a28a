using static TorchSharp.torch;

namespace MedVlp.Modeling.Blocks;

/// <summary>
/// The keys and values (B x heads x T x D) one self-attention block has seen so far, for incremental decoding. Each
/// call appends the new tokens' keys and values; the cache owns its tensors (outside any dispose scope) until disposed.
/// </summary>
public sealed class AttentionCache : IDisposable
{
    private Tensor? _keys;
    private Tensor? _values;

    /// <summary>Tokens cached so far.</summary>
    public long Length => _keys?.shape[2] ?? 0;

    /// <summary>The cached keys, or null when empty.</summary>
    public Tensor? Keys => _keys;

    /// <summary>The cached values, or null when empty.</summary>
    public Tensor? Values => _values;

    /// <summary>Appends keys and values of new tokens and returns all keys and values (owned by the cache).</summary>
    public (Tensor Keys, Tensor Values) Append(Tensor keys, Tensor values)
    {
        ArgumentNullException.ThrowIfNull(keys);
        ArgumentNullException.ThrowIfNull(values);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_keys is not null && (_keys.shape[0] != keys.shape[0] || _keys.shape[1] != keys.shape[1] || _keys.shape[3] != keys.shape[3]))
        {
            throw new ArgumentException($"New keys [{string.Join(", ", keys.shape)}] do not continue the cached [{string.Join(", ", _keys.shape)}] (batch, heads and head size must match).", nameof(keys));
        }

        var newKeys = _keys is null ? keys.alias() : cat([_keys, keys], 2);
        var newValues = _values is null ? values.alias() : cat([_values, values], 2);
        _keys?.Dispose();
        _values?.Dispose();
        _keys = newKeys.DetachFromDisposeScope();
        _values = newValues.DetachFromDisposeScope();
        return (_keys, _values);
    }

    /// <summary>
    /// Keeps the rows <paramref name="rows"/> (int64 indices into the batch; repeats allowed): afterwards row i holds what
    /// row <c>rows[i]</c> held. Beam search uses it to follow each beam's parent and to widen one prompt to several beams.
    /// </summary>
    public void SelectRows(Tensor rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_keys is null || _values is null)
        {
            return;
        }

        using var scope = NewDisposeScope();
        var keys = _keys.index_select(0, rows);
        var values = _values.index_select(0, rows);
        _keys.Dispose();
        _values.Dispose();
        _keys = keys.DetachFromDisposeScope();
        _values = values.DetachFromDisposeScope();
    }

    private bool _disposed;

    /// <summary>Releases the cached tensors.</summary>
    public void Dispose()
    {
        _keys?.Dispose();
        _values?.Dispose();
        _keys = null;
        _values = null;
        _disposed = true;
    }
}

/// <summary>One <see cref="AttentionCache"/> per layer of a decoder.</summary>
public sealed class KeyValueCache : IDisposable
{
    private readonly AttentionCache[] _layers;

    /// <summary>Creates an empty cache for <paramref name="layers"/> layers.</summary>
    public KeyValueCache(int layers)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(layers);
        _layers = Enumerable.Range(0, layers).Select(_ => new AttentionCache()).ToArray();
    }

    /// <summary>The cache of layer <paramref name="index"/>.</summary>
    public AttentionCache this[int index] => _layers[index];

    /// <summary>Number of layers.</summary>
    public int Count => _layers.Length;

    /// <summary>Tokens cached so far (those of the first layer).</summary>
    public long Length => _layers.Length == 0 ? 0 : _layers[0].Length;

    /// <summary>Keeps the rows <paramref name="rows"/> of every layer (see <see cref="AttentionCache.SelectRows"/>).</summary>
    public void SelectRows(Tensor rows)
    {
        foreach (var layer in _layers)
        {
            layer.SelectRows(rows);
        }
    }

    /// <summary>Releases every layer's tensors.</summary>
    public void Dispose()
    {
        foreach (var layer in _layers)
        {
            layer.Dispose();
        }
    }
}
