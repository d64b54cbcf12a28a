using MedVlp.Inference.Generation;
using MedVlp.Modeling.Blocks;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Architectures.Colipri;

/// <summary>
/// COLIPRI's <see cref="ReportDecoder"/> as an <see cref="ILanguageHead"/>: conditioned on one volume's projected image
/// tokens, starting from the start token, decoding with its self-attention key/value cache (the image tokens are
/// cross-attended at every step). Owns the cache and its copy of the image tokens, not the decoder.
/// </summary>
public sealed class ReportDecoderHead : ILanguageHead
{
    private readonly ReportDecoder _decoder;
    private readonly KeyValueCache _cache;
    private readonly long _start;
    private readonly Tensor? _rowToToken;
    private readonly Tensor? _tokenToRow;
    private readonly int _vocabularySize;
    private Tensor _image;
    private bool _started;

    /// <summary>Conditions the decoder.</summary>
    /// <param name="decoder">The report decoder (not owned).</param>
    /// <param name="imageTokens">Projected image tokens of one volume (1 x N x embedding).</param>
    /// <param name="startToken">The token the report begins after ([CLS]).</param>
    /// <param name="endToken">The token that ends it ([SEP]), or null.</param>
    /// <param name="reportVocabulary">When the decoder predicts a subset of the tokenizer's vocabulary
    /// (<see cref="ColipriConfig.ReportVocabulary"/>): the tokenizer id of each decoder row. Token ids in and out of the
    /// head stay the tokenizer's; ids outside the subset get probability 0.</param>
    /// <param name="tokenToRow">With <paramref name="reportVocabulary"/>: the decoder row of every tokenizer id (its length is
    /// the tokenizer's vocabulary size), the table <see cref="ColipriModel.ToReportVocabulary"/> maps with.</param>
    public ReportDecoderHead(ReportDecoder decoder, Tensor imageTokens, long startToken, long? endToken, IReadOnlyList<long>? reportVocabulary = null, IReadOnlyList<long>? tokenToRow = null)
    {
        ArgumentNullException.ThrowIfNull(decoder);
        ArgumentNullException.ThrowIfNull(imageTokens);
        if (imageTokens.Dimensions != 3 || imageTokens.shape[0] != 1)
        {
            throw new ArgumentException($"Image tokens must be (1 x tokens x width), got [{string.Join(", ", imageTokens.shape)}].", nameof(imageTokens));
        }

        if ((reportVocabulary is null) != (tokenToRow is null))
        {
            throw new ArgumentException("A report vocabulary needs its token-to-row table, and the other way round.", nameof(tokenToRow));
        }

        _decoder = decoder;
        _start = startToken;
        EndOfSequenceTokenId = endToken;
        _vocabularySize = decoder.VocabularySize;
        if (reportVocabulary is not null && tokenToRow is not null)
        {
            if (reportVocabulary.Count != decoder.VocabularySize || tokenToRow.Count <= reportVocabulary.Max())
            {
                throw new ArgumentException($"The report vocabulary has {reportVocabulary.Count} ids (largest {reportVocabulary.DefaultIfEmpty().Max()}) for a decoder of {decoder.VocabularySize} rows and a tokenizer of {tokenToRow.Count} ids.", nameof(reportVocabulary));
            }

            if (startToken < 0 || startToken >= tokenToRow.Count || reportVocabulary[(int)tokenToRow[(int)startToken]] != startToken)
            {
                throw new ArgumentException($"The report vocabulary does not contain the start token {startToken}.", nameof(reportVocabulary));
            }

            _rowToToken = tensor(reportVocabulary.ToArray(), device: imageTokens.device).DetachFromDisposeScope();
            _tokenToRow = tensor(tokenToRow.ToArray(), device: imageTokens.device).DetachFromDisposeScope();
            _vocabularySize = tokenToRow.Count;
            _start = tokenToRow[(int)startToken];
        }

        _image = imageTokens.detach().alias().DetachFromDisposeScope();
        _cache = new KeyValueCache(decoder.Layers);
    }

    /// <inheritdoc/>
    public Device Device => _image.device;

    /// <inheritdoc/>
    public int VocabularySize => _vocabularySize;

    /// <inheritdoc/>
    public long? EndOfSequenceTokenId { get; }

    /// <inheritdoc/>
    public int? MaxNewTokens => _decoder.MaxTokens - 1;

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
        var ids = tensor(new[] { _start }, device: Device).unsqueeze(0);
        return scope.MoveToOuter(ToTokenLogits(_decoder.Decode(ids, _image, _cache).select(1, -1)));
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
        var rows = _tokenToRow is null ? tokens.reshape(-1, 1) : _tokenToRow.index_select(0, tokens.reshape(-1).to(ScalarType.Int64)).reshape(-1, 1);
        return scope.MoveToOuter(ToTokenLogits(_decoder.Decode(rows, _image, _cache).select(1, -1)));
    }

    /// <inheritdoc/>
    public void SelectRows(Tensor rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        _cache.SelectRows(rows);
        using var scope = NewDisposeScope();
        var image = _image.index_select(0, rows);
        _image.Dispose();
        _image = image.DetachFromDisposeScope();
    }

    /// <summary>Releases the cache and the image tokens.</summary>
    public void Dispose()
    {
        _cache.Dispose();
        _image.Dispose();
        _rowToToken?.Dispose();
        _tokenToRow?.Dispose();
    }

    private Tensor ToTokenLogits(Tensor rowLogits)
    {
        if (_rowToToken is null)
        {
            return rowLogits;
        }

        using var scope = NewDisposeScope();
        var tokenLogits = full(rowLogits.shape[0], _vocabularySize, float.NegativeInfinity, dtype: rowLogits.dtype, device: rowLogits.device);
        return scope.MoveToOuter(tokenLogits.index_copy_(1, _rowToToken, rowLogits));
    }
}
