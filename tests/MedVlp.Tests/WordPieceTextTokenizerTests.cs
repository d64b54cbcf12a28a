using MedVlp.Testing;
using MedVlp.Text;

namespace MedVlp.Tests;

public sealed class WordPieceTextTokenizerTests
{
    [Fact]
    public void EncodesLikeBertBaseUncased()
    {
        var tokenizer = TestModels.Tokenizer;
        Assert.Equal(30522, tokenizer.VocabularySize);
        Assert.Equal(0, tokenizer.PaddingTokenId);
        Assert.Equal(101, tokenizer.ClassificationTokenId);
        Assert.Equal(102, tokenizer.SeparatorTokenId);
        // The example of Hugging Face's BERT documentation: tokenizer("Hello, my dog is cute")["input_ids"].
        Assert.Equal([101, 7592, 1010, 2026, 3899, 2003, 10140, 102], tokenizer.Encode("Hello, my dog is cute", 512));
        // Uncased: capitals do not matter.
        Assert.Equal(tokenizer.Encode("hello, MY DOG is cute", 512), tokenizer.Encode("Hello, my dog is cute", 512));
    }

    [Fact]
    public void TruncatesKeepingSpecialTokensAndPadsBatches()
    {
        var tokenizer = TestModels.Tokenizer;
        var ids = tokenizer.Encode("Hello, my dog is cute", 4);
        Assert.Equal([101, 7592, 1010, 102], ids);
        var batch = tokenizer.EncodeBatch(["Hello, my dog is cute", "Hello"], 512);
        Assert.Equal(2, batch.BatchSize);
        Assert.Equal(8, batch.SequenceLength);
        Assert.Equal([101L, 7592, 102, 0, 0, 0, 0, 0], batch.Ids.Skip(8).ToArray());
        Assert.Equal([1L, 1, 1, 0, 0, 0, 0, 0], batch.AttentionMask.Skip(8).ToArray());
        Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.Encode("x", 1));
    }

    [Fact]
    public void SavesTheVocabularyItWasMadeFrom()
    {
        using var folder = TestData.NewTempFolder();
        TestModels.Tokenizer.Save(folder.Path);
        Assert.Equal(File.ReadAllBytes(TestData.File("bert/vocab.txt")), File.ReadAllBytes(folder.File("vocab.txt")));
        var reloaded = WordPieceTextTokenizer.FromVocabularyFile(folder.File("vocab.txt"));
        Assert.Equal(TestModels.Tokenizer.Encode("The diagnosis is Dementia.", 64), reloaded.Encode("The diagnosis is Dementia.", 64));
    }

    [Fact]
    public void MissingVocabularyIsAClearError()
    {
        var ex = Assert.Throws<FileNotFoundException>(() => WordPieceTextTokenizer.FromVocabularyFile("/nonexistent/vocab.txt"));
        Assert.Contains("/nonexistent/vocab.txt", ex.Message, StringComparison.Ordinal);
    }
}
