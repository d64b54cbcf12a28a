using Microsoft.ML.Tokenizers;

namespace MedVlp.Text;

/// <summary>Options of <see cref="WordPieceTextTokenizer"/>.</summary>
public sealed class WordPieceTokenizerOptions
{
    /// <summary>Lower-case text before splitting (true for <c>bert-base-uncased</c>, CXR-BERT, PubMedBERT uncased). Default true.</summary>
    public bool LowerCase { get; init; } = true;
}

/// <summary>
/// BERT WordPiece tokenization over a <c>vocab.txt</c> (one token per line, line number = id), such as bert-base-uncased,
/// CXR-BERT or PubMedBERT, implemented by <see cref="BertTokenizer"/> from Microsoft.ML.Tokenizers.
/// </summary>
public sealed class WordPieceTextTokenizer : TextTokenizer
{
    /// <summary>The file name a model package stores the vocabulary under.</summary>
    public const string VocabularyFileName = "vocab.txt";

    private readonly BertTokenizer _tokenizer;
    private readonly byte[] _vocabulary;
    private readonly int _vocabularySize;

    private WordPieceTextTokenizer(byte[] vocabulary, WordPieceTokenizerOptions options)
    {
        _vocabulary = vocabulary;
        Options = options;
        using var stream = new MemoryStream(vocabulary, writable: false);
        _tokenizer = BertTokenizer.Create(stream, new BertOptions { LowerCaseBeforeTokenization = options.LowerCase });
        using var reader = new StreamReader(new MemoryStream(vocabulary, writable: false));
        var lines = 0;
        while (reader.ReadLine() is not null)
        {
            lines++;
        }

        _vocabularySize = lines;
    }

    /// <summary>Loads the vocabulary file <paramref name="vocabularyPath"/>.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not a WordPiece vocabulary (for example it lacks <c>[CLS]</c>).</exception>
    public static WordPieceTextTokenizer FromVocabularyFile(string vocabularyPath, WordPieceTokenizerOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(vocabularyPath);
        if (!File.Exists(vocabularyPath))
        {
            throw new FileNotFoundException($"Vocabulary file {vocabularyPath} does not exist.", vocabularyPath);
        }

        return FromVocabulary(File.ReadAllBytes(vocabularyPath), options, vocabularyPath);
    }

    /// <summary>Loads a vocabulary from a stream (read to its end).</summary>
    public static WordPieceTextTokenizer FromStream(Stream vocabulary, WordPieceTokenizerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(vocabulary);
        using var copy = new MemoryStream();
        vocabulary.CopyTo(copy);
        return FromVocabulary(copy.ToArray(), options, "<stream>");
    }

    private static WordPieceTextTokenizer FromVocabulary(byte[] bytes, WordPieceTokenizerOptions? options, string source)
    {
        try
        {
            return new WordPieceTextTokenizer(bytes, options ?? new WordPieceTokenizerOptions());
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"{source}: not a WordPiece vocabulary ({ex.Message}). Expected one token per line including [CLS], [SEP], [PAD], [UNK] and [MASK].", ex);
        }
    }

    /// <summary>The options the tokenizer was created with.</summary>
    public WordPieceTokenizerOptions Options { get; }

    /// <inheritdoc />
    public override int VocabularySize => _vocabularySize;

    /// <inheritdoc />
    public override int PaddingTokenId => _tokenizer.PaddingTokenId;

    /// <summary>The id of <c>[CLS]</c>.</summary>
    public int ClassificationTokenId => _tokenizer.ClassificationTokenId;

    /// <summary>The id of <c>[SEP]</c>.</summary>
    public int SeparatorTokenId => _tokenizer.SeparatorTokenId;

    /// <inheritdoc />
    public override string Kind => "wordpiece";

    /// <inheritdoc />
    public override IReadOnlyList<int> Encode(string text, int maxTokens)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTokens, 2);
        var ids = _tokenizer.EncodeToIds(text, addSpecialTokens: false);
        var body = ids.Count > maxTokens - 2 ? ids.Take(maxTokens - 2) : ids;
        return _tokenizer.BuildInputsWithSpecialTokens(body);
    }

    /// <inheritdoc />
    public override int? BeginningOfSequenceTokenId => ClassificationTokenId;

    /// <inheritdoc />
    public override int? EndOfSequenceTokenId => SeparatorTokenId;

    /// <summary>The Microsoft.ML.Tokenizers tokenizer this adapts.</summary>
    public BertTokenizer Inner => _tokenizer;

    /// <inheritdoc />
    public override string Decode(IEnumerable<int> ids, bool skipSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(ids);
        return _tokenizer.Decode(ids, skipSpecialTokens) ?? "";
    }

    /// <summary>
    /// Loads the WordPiece model of a Hugging Face <c>tokenizer.json</c> (<c>model.type</c> = <c>WordPiece</c>,
    /// <c>model.vocab</c> token -> id; lower-casing from <c>normalizer.lowercase</c>).
    /// </summary>
    /// <exception cref="InvalidDataException">The file is not a WordPiece <c>tokenizer.json</c>.</exception>
    public static WordPieceTextTokenizer FromTokenizerJson(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"Tokenizer file {path} does not exist.", path);
        }

        var json = File.ReadAllBytes(path);
        if (!System.Text.Unicode.Utf8.IsValid(json))
        {
            throw new InvalidDataException($"{path}: not valid UTF-8 JSON.");
        }

        System.Text.Json.JsonDocument document;
        try
        {
            document = System.Text.Json.JsonDocument.Parse(json);
        }
        catch (System.Text.Json.JsonException ex)
        {
            throw new InvalidDataException($"{path}: not valid JSON ({ex.Message}).", ex);
        }

        using var _ = document;
        var root = document.RootElement;
        if (!root.TryGetProperty("model", out var model) || !model.TryGetProperty("type", out var type) || type.GetString() != "WordPiece" ||
            !model.TryGetProperty("vocab", out var vocab) || vocab.ValueKind != System.Text.Json.JsonValueKind.Object)
        {
            throw new InvalidDataException($"{path}: model: expected a WordPiece model with a vocab object.");
        }

        var tokens = new SortedDictionary<int, string>();
        foreach (var entry in vocab.EnumerateObject())
        {
            if (!entry.Value.TryGetInt32(out var id) || id < 0 || !tokens.TryAdd(id, entry.Name) || entry.Name.Contains('\n', StringComparison.Ordinal))
            {
                throw new InvalidDataException($"{path}: model.vocab.{entry.Name}: expected a unique non-negative id, found {entry.Value}.");
            }
        }

        if (tokens.Count == 0 || tokens.Keys.Last() != tokens.Count - 1)
        {
            throw new InvalidDataException($"{path}: model.vocab: ids must be 0..{tokens.Count - 1} without gaps.");
        }

        var lowerCase = !root.TryGetProperty("normalizer", out var normalizer) || normalizer.ValueKind != System.Text.Json.JsonValueKind.Object ||
            !normalizer.TryGetProperty("lowercase", out var lower) || lower.ValueKind != System.Text.Json.JsonValueKind.False;
        var bytes = System.Text.Encoding.UTF8.GetBytes(string.Join("\n", tokens.Values) + "\n");
        return FromVocabulary(bytes, new WordPieceTokenizerOptions { LowerCase = lowerCase }, path);
    }

    /// <inheritdoc />
    public override void Save(string directory)
    {
        Directory.CreateDirectory(directory);
        File.WriteAllBytes(Path.Combine(directory, VocabularyFileName), _vocabulary);
    }
}
