using MedVlp.Data;

namespace MedVlp.Text;

/// <summary>
/// Turns report text into token ids for a text encoder or language model, and ids back into text. A thin adapter over
/// Microsoft.ML.Tokenizers: BERT WordPiece (<see cref="WordPieceTextTokenizer"/>, from <c>vocab.txt</c> or a Hugging Face
/// <c>tokenizer.json</c>) and GPT-2 byte-level BPE (<see cref="Gpt2TextTokenizer"/>). <see cref="TokenizerStore"/> saves
/// and loads several tokenizers of one model by name.
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

    /// <summary>Turns ids back into text.</summary>
    /// <param name="ids">Token ids.</param>
    /// <param name="skipSpecialTokens">Leave out special tokens (<c>[CLS]</c>, <c>[PAD]</c>, <c>&lt;|endoftext|&gt;</c>).</param>
    public abstract string Decode(IEnumerable<int> ids, bool skipSpecialTokens = true);

    /// <summary>The id that starts a sequence (<c>[CLS]</c> for BERT), if the tokenizer has one.</summary>
    public virtual int? BeginningOfSequenceTokenId => null;

    /// <summary>The id that ends a sequence (<c>[SEP]</c> for BERT, <c>&lt;|endoftext|&gt;</c> for GPT-2), if the tokenizer has one.</summary>
    public virtual int? EndOfSequenceTokenId => null;

    /// <summary>Encodes several texts into one padded batch, padding on the side <paramref name="options"/> asks for.</summary>
    /// <param name="texts">The texts.</param>
    /// <param name="maxTokens">The largest sequence length; longer texts are truncated (their end is dropped, special tokens kept).</param>
    /// <param name="options">Padding side and fixed length.</param>
    public TokenBatch EncodeBatch(IReadOnlyList<string> texts, int maxTokens, TokenBatchOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var right = EncodeBatch(texts, maxTokens);
        var length = options.PadToLength is { } fixedLength ? Math.Max(fixedLength, right.SequenceLength) : right.SequenceLength;
        if (options.PadToLength > maxTokens)
        {
            throw new ArgumentOutOfRangeException(nameof(options), $"PadToLength {options.PadToLength} exceeds maxTokens {maxTokens}.");
        }

        if (options.Side == PaddingSide.Right && length == right.SequenceLength)
        {
            return right;
        }

        var ids = new long[right.BatchSize * length];
        var mask = new long[right.BatchSize * length];
        Array.Fill(ids, PaddingTokenId);
        for (var n = 0; n < right.BatchSize; n++)
        {
            var count = 0;
            for (var t = 0; t < right.SequenceLength; t++)
            {
                count += (int)right.AttentionMask[(n * right.SequenceLength) + t];
            }

            var start = options.Side == PaddingSide.Left ? length - count : 0;
            for (var t = 0; t < count; t++)
            {
                ids[(n * length) + start + t] = right.Ids[(n * right.SequenceLength) + t];
                mask[(n * length) + start + t] = 1;
            }
        }

        return new TokenBatch(ids, mask, right.BatchSize, length);
    }

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

/// <summary>Options of <see cref="TextTokenizer.EncodeBatch(IReadOnlyList{string}, int, TokenBatchOptions)"/>.</summary>
public sealed class TokenBatchOptions
{
    /// <summary>Where padding goes. Default right.</summary>
    public PaddingSide Side { get; init; } = PaddingSide.Right;

    /// <summary>Pad every row to this length (at most maxTokens); <see langword="null"/> pads to the longest text.</summary>
    public int? PadToLength { get; init; }
}

/// <summary>A padded batch of token ids and its attention mask, row-major [batch, length].</summary>
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
