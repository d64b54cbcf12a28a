namespace MedVlp.Text;

/// <summary>
/// Turns report text into token ids for a text encoder. The base of MedVlp's tokenizers: WordPiece vocabularies
/// (<see cref="WordPieceTextTokenizer"/>) today, Hugging Face <c>tokenizer.json</c> files later.
/// </summary>
/// <remarks>Implementations are immutable and safe for concurrent use.</remarks>
public abstract class TextTokenizer
{
    /// <summary>The number of entries in the vocabulary (the text encoder's embedding table must be at least this large).</summary>
    public abstract int VocabularySize { get; }

    /// <summary>The id used to pad short sequences.</summary>
    public abstract int PaddingTokenId { get; }

    /// <summary>A short name of the tokenizer kind stored in model packages (for example <c>wordpiece</c>).</summary>
    public abstract string Kind { get; }

    /// <summary>Encodes one text with the model's special tokens (for BERT <c>[CLS] ... [SEP]</c>), keeping at most
    /// <paramref name="maxTokens"/> tokens in all.</summary>
    /// <param name="text">The text.</param>
    /// <param name="maxTokens">The largest number of ids to return, special tokens included (at least 2).</param>
    public abstract IReadOnlyList<int> Encode(string text, int maxTokens);

    /// <summary>Writes the files this tokenizer is created from into <paramref name="directory"/>.</summary>
    public abstract void Save(string directory);

    /// <summary>Encodes several texts into one right-padded batch.</summary>
    /// <param name="texts">The texts.</param>
    /// <param name="maxTokens">The largest sequence length; longer texts are truncated.</param>
    public TokenBatch EncodeBatch(IReadOnlyList<string> texts, int maxTokens)
    {
        ArgumentNullException.ThrowIfNull(texts);
        if (texts.Count == 0)
        {
            throw new ArgumentException("At least one text is needed.", nameof(texts));
        }

        var encoded = new IReadOnlyList<int>[texts.Count];
        var length = 1;
        for (var n = 0; n < texts.Count; n++)
        {
            encoded[n] = Encode(texts[n] ?? throw new ArgumentException($"Text {n} is null.", nameof(texts)), maxTokens);
            length = Math.Max(length, encoded[n].Count);
        }

        var ids = new long[texts.Count * length];
        var mask = new long[texts.Count * length];
        Array.Fill(ids, PaddingTokenId);
        for (var n = 0; n < texts.Count; n++)
        {
            for (var t = 0; t < encoded[n].Count; t++)
            {
                ids[(n * length) + t] = encoded[n][t];
                mask[(n * length) + t] = 1;
            }
        }

        return new TokenBatch(ids, mask, texts.Count, length);
    }
}

/// <summary>A right-padded batch of token ids and its attention mask, row-major [batch, length].</summary>
public sealed class TokenBatch
{
    internal TokenBatch(long[] ids, long[] attentionMask, int batchSize, int sequenceLength)
    {
        Ids = ids;
        AttentionMask = attentionMask;
        BatchSize = batchSize;
        SequenceLength = sequenceLength;
    }

    /// <summary>Token ids, row-major [batch, length].</summary>
    public IReadOnlyList<long> Ids { get; }

    /// <summary>1 for real tokens, 0 for padding, row-major [batch, length].</summary>
    public IReadOnlyList<long> AttentionMask { get; }

    /// <summary>Number of texts.</summary>
    public int BatchSize { get; }

    /// <summary>Length of every row (the longest encoded text).</summary>
    public int SequenceLength { get; }
}
