using MedVlp.Modeling;
using MedVlp.Testing;
using MedVlp.Text;
using MedVlp.Volumes;
using MedVlp.Volumes.Transforms;

namespace MedVlp.Tests;

/// <summary>Small models and inputs shared by the tests.</summary>
internal static class TestModels
{
    private static readonly Lazy<WordPieceTextTokenizer> BertTokenizer = new(() => WordPieceTextTokenizer.FromVocabularyFile(TestData.File("bert/vocab.txt")));

    /// <summary>The real bert-base-uncased WordPiece tokenizer (fetched test data).</summary>
    public static WordPieceTextTokenizer Tokenizer => BertTokenizer.Value;

    /// <summary>A tiny configuration over the real vocabulary (fast on a CPU).</summary>
    public static Clip3dConfig TinyConfig(TextPooling pooling = TextPooling.Mean) => new()
    {
        Volume = new VolumeTransformerConfig { InputSize = 16, PatchSize = 8, Width = 16, Depth = 1, Heads = 2, MlpRatio = 2 },
        Text = new BertConfig
        {
            VocabSize = Tokenizer.VocabularySize,
            HiddenSize = 16,
            NumHiddenLayers = 1,
            NumAttentionHeads = 2,
            IntermediateSize = 32,
            MaxPositionEmbeddings = 64,
            HiddenDropoutProb = 0,
            AttentionProbsDropoutProb = 0,
            AddPoolingLayer = false,
        },
        EmbeddingDim = 8,
        TextPooling = pooling,
        MaxTextTokens = 64,
    };

    /// <summary>A small WordPiece vocabulary written by the tests themselves (not third-party data): special tokens,
    /// a few report words and their pieces. Models over it are tiny, so allocation-bounded tests stay meaningful.</summary>
    public static string SmallVocabulary { get; } = string.Join('\n',
    [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "of", "is", "are", "and", "no", "with", "diagnosis", "not", "demented",
        "mild", "cognitive", "impairment", "alzheimer", "ventricles", "enlarged", "mildly", "atrophy", "hippocampal", "patient", "female",
        "male", "year", "old", "-", ".", ",", "mmse", "1", "2", "3", "4", "5", "6", "7", "8", "9", "0", "##s", "##ly", "##ed",
    ]) + "\n";

    /// <summary>A tokenizer over <see cref="SmallVocabulary"/>.</summary>
    public static WordPieceTextTokenizer SmallTokenizer()
    {
        using var stream = new MemoryStream(System.Text.Encoding.UTF8.GetBytes(SmallVocabulary));
        return WordPieceTextTokenizer.FromStream(stream);
    }

    /// <summary><see cref="TinyConfig"/> over <see cref="SmallTokenizer"/>.</summary>
    public static Clip3dConfig SmallVocabularyConfig() => TinyConfig() with { Text = TinyConfig().Text with { VocabSize = SmallTokenizer().VocabularySize } };

    /// <summary>MedBLIP's preprocessing at a small size.</summary>
    public static TransformPipeline Preprocessing(int size) => new(
    [
        new MinMaxNormalize { OutputMin = 0, OutputMax = 1 },
        new ResizeLongestSide { Size = size, AlignCorners = true, Interpolation = Interpolation.Trilinear },
        new CropOrPad { Size = new VolumeShape(size, size, size), FillValue = 0, Centering = CropOrPadCentering.ExtraAfter },
    ], "test");

    public static VisionLanguageModel TinyModel(int seed = 7, TextPooling pooling = TextPooling.Mean) =>
        VisionLanguageModel.Create(TinyConfig(pooling), Tokenizer, Preprocessing(16), seed);

    /// <summary>A deterministic non-cubic test volume with a 2 mm x 2 mm x 3 mm affine.</summary>
    public static Volume RandomVolume(int seed, int x = 20, int y = 24, int z = 18)
    {
        var random = new Random(seed);
        var data = new float[x * y * z];
        for (var n = 0; n < data.Length; n++)
        {
            data[n] = (float)(random.NextDouble() * 100);
        }

        return new Volume(data, new VolumeShape(x, y, z), Affine.FromSpacing(new Spacing(2, 2, 3)));
    }
}
