using MedVlp.Modeling.Backbones;
using MedVlp.Modeling.Blocks;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Inference.Generation;

/// <summary>
/// A GPT-2-layout causal language model (<see cref="Gpt2LMHeadModel"/>) conditioned on one prefix given as token ids,
/// as token vectors (<c>inputs_embeds</c>, e.g. a prompt followed by image tokens), or both (ids first), decoding with
/// its key/value cache. Positions count from 0 over the prefix, as Hugging Face's <c>generate</c> numbers them. Owns the
/// cache, not the model.
/// </summary>
public sealed class Gpt2LanguageHead : ILanguageHead
{
    private readonly Gpt2LMHeadModel _model;
    private readonly Tensor _prefix;
    private readonly KeyValueCache _cache;
    private long _length;
    private bool _started;

    /// <summary>Conditions <paramref name="model"/> on a prefix.</summary>
    /// <param name="model">The language model (used under no_grad; not owned).</param>
    /// <param name="prefixIds">Prefix token ids (1 x P or P), or null.</param>
    /// <param name="prefixEmbeddings">Prefix token vectors (1 x Q x n_embd) after the ids, or null.</param>
    /// <param name="endOfSequenceTokenId">The end token (GPT-2's <c>&lt;|endoftext|&gt;</c> = 50256 by default), or null for none.</param>
    public Gpt2LanguageHead(Gpt2LMHeadModel model, Tensor? prefixIds, Tensor? prefixEmbeddings = null, long? endOfSequenceTokenId = 50256)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (prefixIds is null && prefixEmbeddings is null)
        {
            throw new ArgumentException("Give prefix token ids, prefix embeddings or both.", nameof(prefixIds));
        }

        var width = model.Config.NEmbd;
        if (prefixEmbeddings is not null && (prefixEmbeddings.Dimensions != 3 || prefixEmbeddings.shape[0] != 1 || prefixEmbeddings.shape[2] != width))
        {
            throw new ArgumentException($"Prefix embeddings must be (1 x tokens x {width}), got [{string.Join(", ", prefixEmbeddings.shape)}].", nameof(prefixEmbeddings));
        }

        if (prefixIds is not null && !(prefixIds.Dimensions == 1 || (prefixIds.Dimensions == 2 && prefixIds.shape[0] == 1)))
        {
            throw new ArgumentException($"Prefix ids must be (tokens) or (1 x tokens), got [{string.Join(", ", prefixIds.shape)}].", nameof(prefixIds));
        }

        _model = model;
        using (var scope = NewDisposeScope())
        using (var noGrad = no_grad())
        {
            var device = model.Transformer.TokenEmbeddings.weight!.device;
            var parts = new List<Tensor>();
            if (prefixIds is not null)
            {
                parts.Add(model.Transformer.TokenEmbeddings.forward(prefixIds.reshape(1, -1).to(ScalarType.Int64).to(device)));
            }

            if (prefixEmbeddings is not null)
            {
                parts.Add(prefixEmbeddings.to(device));
            }

            var prefix = parts.Count == 1 ? parts[0].alias() : cat(parts, 1);
            _prefix = prefix.DetachFromDisposeScope();
        }

        if (_prefix.shape[1] < 1 || _prefix.shape[1] >= model.Config.NPositions)
        {
            var length = _prefix.shape[1];
            _prefix.Dispose();
            throw new ArgumentException($"The prefix has {length} tokens; the model takes 1 .. {model.Config.NPositions - 1} before generating.");
        }

        EndOfSequenceTokenId = endOfSequenceTokenId;
        _cache = new KeyValueCache(model.Config.NLayer);
    }

    /// <inheritdoc/>
    public Device Device => _prefix.device;

    /// <inheritdoc/>
    public int VocabularySize => _model.Config.VocabSize;

    /// <inheritdoc/>
    public long? EndOfSequenceTokenId { get; }

    /// <inheritdoc/>
    public int? MaxNewTokens => (int)(_model.Config.NPositions - _prefix.shape[1]);

    /// <inheritdoc/>
    public Tensor Prefill()
    {
        if (_started)
        {
            throw new InvalidOperationException("Prefill runs once, first.");
        }

        _started = true;
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        _length = _prefix.shape[1];
        var mask = ones(1, _length, ScalarType.Int64, Device);
        var positions = (mask.cumsum(1) - 1).clamp_min(0);
        using var output = _model.Compute(null, _prefix, mask, null, positions, _cache);
        return scope.MoveToOuter(output.Logits.select(1, -1).alias());
    }

    /// <inheritdoc/>
    public Tensor Advance(Tensor tokens)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        if (!_started)
        {
            throw new InvalidOperationException("Call Prefill before Advance.");
        }

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var rows = tokens.shape[0];
        _length++;
        var mask = ones(rows, _length, ScalarType.Int64, Device);
        var position = mask.sum(1, keepdim: true) - 1;
        using var output = _model.Compute(tokens.reshape(rows, 1), null, mask, null, position, _cache);
        return scope.MoveToOuter(output.Logits.select(1, -1).alias());
    }

    /// <inheritdoc/>
    public void SelectRows(Tensor rows) => _cache.SelectRows(rows);

    /// <summary>Releases the cache and the prefix.</summary>
    public void Dispose()
    {
        _cache.Dispose();
        _prefix.Dispose();
    }
}
