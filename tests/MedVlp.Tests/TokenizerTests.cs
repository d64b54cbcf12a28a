using System.Text.Json;
using MedVlp.Data;
using MedVlp.Testing;
using MedVlp.Text;

namespace MedVlp.Tests;

/// <summary>Tokenizers on Microsoft.ML.Tokenizers: GPT-2 byte-level BPE (real GPT-2 data), WordPiece from tokenizer.json, Decode, padding, storage by name.</summary>
public sealed class TokenizerTests
{
    [Fact]
    public void Gpt2EncodesLikeHuggingFaceGpt2()
    {
        var gpt2 = new Gpt2TextTokenizer();
        Assert.Equal(50257, gpt2.VocabularySize);
        // The example of Hugging Face's GPT-2 documentation: tokenizer("Hello, my dog is cute")["input_ids"].
        Assert.Equal([15496, 11, 616, 3290, 318, 13779], gpt2.Encode("Hello, my dog is cute", 64));
        Assert.Equal([15496, 995], gpt2.Encode("Hello world", 64));
        Assert.Equal(50256, gpt2.EndOfSequenceTokenId);
        Assert.Equal(50256, gpt2.PaddingTokenId);
    }

    [Fact]
    public void Gpt2DecodesBytesBackExactlyAndHandlesBosEos()
    {
        var gpt2 = new Gpt2TextTokenizer(new Gpt2TokenizerOptions { AddBeginningOfSequence = true, AddEndOfSequence = true });
        const string report = "Small left pleural effusion (≈5 mm), µ-CT: no change — see 2024-03-01.";
        var ids = gpt2.Encode(report, 256);
        Assert.Equal(50256, ids[0]);
        Assert.Equal(50256, ids[^1]);
        Assert.Equal(report, gpt2.Decode(ids));
        Assert.Equal("<|endoftext|>" + report + "<|endoftext|>", gpt2.Decode(ids, skipSpecialTokens: false));

        var truncated = gpt2.Encode(report, 6);
        Assert.Equal(6, truncated.Count);
        Assert.Equal(50256, truncated[^1]);
        Assert.StartsWith(gpt2.Decode(truncated), report, StringComparison.Ordinal);
    }

    [Fact]
    public void BatchesPadLeftOrRightAndToAFixedLength()
    {
        var gpt2 = new Gpt2TextTokenizer();
        var left = gpt2.EncodeBatch(["Hello world", "Hello, my dog is cute"], 64, new TokenBatchOptions { Side = PaddingSide.Left });
        Assert.Equal(6, left.SequenceLength);
        Assert.Equal([50256L, 50256, 50256, 50256, 15496, 995], left.Ids.Take(6).ToArray());
        Assert.Equal([0L, 0, 0, 0, 1, 1], left.AttentionMask.Take(6).ToArray());
        Assert.Equal([15496L, 11, 616, 3290, 318, 13779], left.Ids.Skip(6).ToArray());

        var bert = TestModels.Tokenizer;
        var fixedLength = bert.EncodeBatch(["Hello, my dog is cute", "Hello"], 16, new TokenBatchOptions { PadToLength = 10 });
        Assert.Equal(10, fixedLength.SequenceLength);
        Assert.Equal([101L, 7592, 102, 0, 0, 0, 0, 0, 0, 0], fixedLength.Ids.Skip(10).ToArray());
        var same = bert.EncodeBatch(["Hello, my dog is cute", "Hello"], 16, new TokenBatchOptions());
        Assert.Equal(bert.EncodeBatch(["Hello, my dog is cute", "Hello"], 16).Ids, same.Ids);
        Assert.Throws<ArgumentOutOfRangeException>(() => bert.EncodeBatch(["x"], 8, new TokenBatchOptions { PadToLength = 9 }));
    }

    [Fact]
    public void WordPieceDecodesAndReadsTokenizerJson()
    {
        var bert = TestModels.Tokenizer;
        var ids = bert.Encode("The ventricles are enlarged.", 64);
        Assert.Equal("the ventricles are enlarged.", bert.Decode(ids));
        Assert.StartsWith("[CLS]", bert.Decode(ids, skipSpecialTokens: false), StringComparison.Ordinal);
        Assert.Equal(101, bert.BeginningOfSequenceTokenId);
        Assert.Equal(102, bert.EndOfSequenceTokenId);

        // A Hugging Face tokenizer.json carrying the same WordPiece vocabulary gives the same ids.
        using var folder = TestData.NewTempFolder();
        var vocab = File.ReadAllLines(TestData.File("bert/vocab.txt"));
        var json = folder.File("tokenizer.json");
        File.WriteAllText(json, JsonSerializer.Serialize(new
        {
            version = "1.0",
            normalizer = new { type = "BertNormalizer", lowercase = true },
            model = new { type = "WordPiece", unk_token = "[UNK]", continuing_subword_prefix = "##", vocab = vocab.Select((t, i) => (t, i)).ToDictionary(x => x.t, x => x.i) },
        }));
        var fromJson = WordPieceTextTokenizer.FromTokenizerJson(json);
        Assert.Equal(bert.Encode("Hello, my dog is cute", 512), fromJson.Encode("Hello, my dog is cute", 512));
        Assert.Equal(30522, fromJson.VocabularySize);

        File.WriteAllText(json, "{\"model\":{\"type\":\"BPE\",\"vocab\":{}}}");
        var ex = Assert.Throws<InvalidDataException>(() => WordPieceTextTokenizer.FromTokenizerJson(json));
        Assert.Contains(json, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AModelFolderCarriesSeveralTokenizersByName()
    {
        using var folder = TestData.NewTempFolder();
        TokenizerStore.Save(folder.Path, "text-encoder", TestModels.Tokenizer);
        TokenizerStore.Save(folder.Path, "language-model", new Gpt2TextTokenizer(new Gpt2TokenizerOptions { AddEndOfSequence = true }));
        Assert.Equal(["language-model", "text-encoder"], TokenizerStore.Names(folder.Path));

        var encoder = TokenizerStore.Load(folder.Path, "text-encoder");
        var decoder = TokenizerStore.Load(folder.Path, "language-model");
        Assert.IsType<WordPieceTextTokenizer>(encoder);
        Assert.Equal(TestModels.Tokenizer.Encode("pleural effusion", 32), encoder.Encode("pleural effusion", 32));
        Assert.Equal(50256, decoder.Encode("pleural effusion", 32)[^1]);
        Assert.Throws<InvalidDataException>(() => TokenizerStore.Load(folder.Path, "missing"));
        Assert.Throws<ArgumentException>(() => TokenizerStore.Save(folder.Path, "../escape", encoder));
    }
}
