using System.Text.Json;
using System.Text.Json.Serialization;

namespace MedVlp.Text;

/// <summary>
/// Saves and loads the tokenizers of a model by name: each goes to <c>tokenizers/NAME/</c> under a model folder with
/// its own files (for WordPiece <c>vocab.txt</c>) and <c>tokenizer_config.json</c> (kind and options), so a model that
/// needs several (for example a BERT encoder and a GPT-2 decoder) carries all of them.
/// </summary>
public static class TokenizerStore
{
    /// <summary>The folder under a model folder that holds the tokenizers.</summary>
    public const string FolderName = "tokenizers";

    /// <summary>The settings file in each tokenizer's folder.</summary>
    public const string ConfigFileName = "tokenizer_config.json";

    /// <summary>Writes <paramref name="tokenizer"/> as <paramref name="name"/> under <paramref name="modelDirectory"/>.</summary>
    public static void Save(string modelDirectory, string name, TextTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        var directory = Folder(modelDirectory, name);
        tokenizer.Save(directory);
        var config = new StoredTokenizer
        {
            Kind = tokenizer.Kind,
            LowerCase = (tokenizer as WordPieceTextTokenizer)?.Options.LowerCase,
            AddBos = (tokenizer as Gpt2TextTokenizer)?.Options.AddBeginningOfSequence,
            AddEos = (tokenizer as Gpt2TextTokenizer)?.Options.AddEndOfSequence,
        };
        File.WriteAllBytes(Path.Combine(directory, ConfigFileName), JsonSerializer.SerializeToUtf8Bytes(config, StoredTokenizerContext.Default.StoredTokenizer));
    }

    /// <summary>Loads the tokenizer saved as <paramref name="name"/> under <paramref name="modelDirectory"/>.</summary>
    /// <exception cref="InvalidDataException">The folder or its config is missing or names an unknown kind.</exception>
    public static TextTokenizer Load(string modelDirectory, string name)
    {
        var directory = Folder(modelDirectory, name);
        var configPath = Path.Combine(directory, ConfigFileName);
        if (!File.Exists(configPath))
        {
            throw new InvalidDataException($"{configPath}: missing; no tokenizer \"{name}\" is stored in {modelDirectory}.");
        }

        StoredTokenizer config;
        try
        {
            config = JsonSerializer.Deserialize(File.ReadAllBytes(configPath), StoredTokenizerContext.Default.StoredTokenizer)
                ?? throw new InvalidDataException($"{configPath}: empty.");
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"{configPath}: not valid JSON ({ex.Message}).", ex);
        }

        return config.Kind switch
        {
            "wordpiece" => WordPieceTextTokenizer.FromVocabularyFile(Path.Combine(directory, WordPieceTextTokenizer.VocabularyFileName),
                new WordPieceTokenizerOptions { LowerCase = config.LowerCase ?? true }),
            "gpt2-bpe" => File.Exists(Path.Combine(directory, Gpt2TextTokenizer.VocabularyFileName))
                ? Gpt2TextTokenizer.FromFiles(Path.Combine(directory, Gpt2TextTokenizer.VocabularyFileName), Path.Combine(directory, Gpt2TextTokenizer.MergesFileName), Gpt2Options(config))
                : new Gpt2TextTokenizer(Gpt2Options(config)),
            _ => throw new InvalidDataException($"{configPath}: kind: expected \"wordpiece\" or \"gpt2-bpe\", found \"{config.Kind}\"."),
        };
    }

    private static Gpt2TokenizerOptions Gpt2Options(StoredTokenizer config) =>
        new() { AddBeginningOfSequence = config.AddBos ?? false, AddEndOfSequence = config.AddEos ?? false };

    /// <summary>The names of the tokenizers stored under <paramref name="modelDirectory"/>.</summary>
    public static IReadOnlyList<string> Names(string modelDirectory)
    {
        var root = Path.Combine(modelDirectory, FolderName);
        return Directory.Exists(root)
            ? Directory.GetDirectories(root).Where(d => File.Exists(Path.Combine(d, ConfigFileName))).Select(d => Path.GetFileName(d)!).Order(StringComparer.Ordinal).ToList()
            : [];
    }

    private static string Folder(string modelDirectory, string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(modelDirectory);
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (name != Path.GetFileName(name) || name is "." or ".." || name.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')))
        {
            throw new ArgumentException($"Tokenizer name \"{name}\" must be a plain name of letters, digits, '-', '_' and '.'.", nameof(name));
        }

        return Path.Combine(modelDirectory, FolderName, name);
    }
}

internal sealed class StoredTokenizer
{
    public string Kind { get; set; } = "";

    public bool? LowerCase { get; set; }

    public bool? AddBos { get; set; }

    public bool? AddEos { get; set; }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull, WriteIndented = true)]
[JsonSerializable(typeof(StoredTokenizer))]
internal sealed partial class StoredTokenizerContext : JsonSerializerContext;
