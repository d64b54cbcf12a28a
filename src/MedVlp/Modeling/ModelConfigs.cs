using System.Text.Json;
using System.Text.Json.Serialization;

namespace MedVlp.Modeling;

/// <summary>Sizes of the 3D vision transformer that encodes volumes (<see cref="VolumeTransformer"/>).</summary>
public sealed record VolumeEncoderConfig
{
    /// <summary>Edge length of the cubic input, in voxels (MedBLIP: 224). Must be a multiple of <see cref="PatchSize"/>.</summary>
    public int InputSize { get; init; } = 32;

    /// <summary>Edge length of a cubic patch (MedBLIP: 32).</summary>
    public int PatchSize { get; init; } = 8;

    /// <summary>Input channels (1 for MRI/CT).</summary>
    public int InChannels { get; init; } = 1;

    /// <summary>Token width (MedBLIP's EVA ViT-g: 1408).</summary>
    public int Width { get; init; } = 64;

    /// <summary>Number of transformer blocks.</summary>
    public int Depth { get; init; } = 3;

    /// <summary>Attention heads per block (and of the attention pooling).</summary>
    public int Heads { get; init; } = 4;

    /// <summary>MLP hidden size as a multiple of <see cref="Width"/>.</summary>
    public double MlpRatio { get; init; } = 4;

    /// <summary>LayerNorm epsilon (EVA/MedBLIP: 1e-6).</summary>
    public double LayerNormEps { get; init; } = 1e-6;

    /// <summary>Patches along each axis.</summary>
    [JsonIgnore]
    public int GridSize => InputSize / PatchSize;

    internal void Validate()
    {
        if (InputSize <= 0 || PatchSize <= 0 || InputSize % PatchSize != 0 || InChannels <= 0 || Width <= 0 || Depth < 0 ||
            Heads <= 0 || Width % Heads != 0 || MlpRatio <= 0 || LayerNormEps <= 0)
        {
            throw new ArgumentException($"Invalid volume encoder configuration {this}: input size must be a positive multiple of the patch size and width a multiple of heads.");
        }
    }
}

/// <summary>
/// Sizes of a BERT text encoder, named as in Hugging Face's <c>config.json</c> (<c>hidden_size</c>, <c>num_hidden_layers</c>, ...),
/// so that a real BERT configuration file deserialises into it.
/// </summary>
public sealed record BertConfig
{
    /// <summary>bert-base-uncased: 30522 tokens, 12 layers of width 768, 12 heads, FFN 3072, 512 positions.</summary>
    public static BertConfig BertBase { get; } = new();

    /// <summary>Vocabulary size.</summary>
    public int VocabSize { get; init; } = 30522;

    /// <summary>Hidden width.</summary>
    public int HiddenSize { get; init; } = 768;

    /// <summary>Number of encoder layers.</summary>
    public int NumHiddenLayers { get; init; } = 12;

    /// <summary>Attention heads per layer.</summary>
    public int NumAttentionHeads { get; init; } = 12;

    /// <summary>Feed-forward hidden size.</summary>
    public int IntermediateSize { get; init; } = 3072;

    /// <summary>Largest sequence length (rows of the position embedding).</summary>
    public int MaxPositionEmbeddings { get; init; } = 512;

    /// <summary>Number of token types (segments).</summary>
    public int TypeVocabSize { get; init; } = 2;

    /// <summary>LayerNorm epsilon.</summary>
    public double LayerNormEps { get; init; } = 1e-12;

    /// <summary>Dropout on hidden states (training only).</summary>
    public double HiddenDropoutProb { get; init; } = 0.1;

    /// <summary>Dropout on attention probabilities (training only).</summary>
    public double AttentionProbsDropoutProb { get; init; } = 0.1;

    /// <summary>Whether the model has BERT's pooler (<c>pooler.dense</c>).</summary>
    public bool AddPoolingLayer { get; init; } = true;

    internal void Validate()
    {
        if (VocabSize <= 0 || HiddenSize <= 0 || NumHiddenLayers < 0 || NumAttentionHeads <= 0 || HiddenSize % NumAttentionHeads != 0 ||
            IntermediateSize <= 0 || MaxPositionEmbeddings <= 1 || TypeVocabSize <= 0 || LayerNormEps <= 0 ||
            HiddenDropoutProb is < 0 or >= 1 || AttentionProbsDropoutProb is < 0 or >= 1)
        {
            throw new ArgumentException($"Invalid BERT configuration {this}: hidden size must be a multiple of the number of heads, sizes positive, dropouts in [0, 1).");
        }
    }
}

/// <summary>How a text encoder turns token states into one vector.</summary>
public enum TextPooling
{
    /// <summary>The final hidden state of the first token (<c>[CLS]</c>), as CLIP-style BERT encoders and MedBLIP do.</summary>
    Cls,

    /// <summary>The mean of the final hidden states over real (non-padding) tokens.</summary>
    Mean,
}

/// <summary>The configuration of a dual-encoder (CLIP-style) vision-language model; stored as <c>config.json</c> in a model package.</summary>
public sealed record VisionLanguageModelConfig
{
    /// <summary>The volume encoder.</summary>
    public VolumeEncoderConfig Volume { get; init; } = new();

    /// <summary>The text encoder.</summary>
    public BertConfig Text { get; init; } = new();

    /// <summary>Width of the shared embedding space.</summary>
    public int EmbeddingDim { get; init; } = 64;

    /// <summary>How text token states are pooled.</summary>
    public TextPooling TextPooling { get; init; } = TextPooling.Cls;

    /// <summary>Longest tokenized text, special tokens included (at most <see cref="BertConfig.MaxPositionEmbeddings"/>).</summary>
    public int MaxTextTokens { get; init; } = 128;

    /// <summary>Initial softmax temperature (CLIP: 0.07); the model learns <c>logit_scale = log(1 / temperature)</c>.</summary>
    public double InitialTemperature { get; init; } = 0.07;

    /// <summary>Upper bound of <c>exp(logit_scale)</c> (CLIP: 100).</summary>
    public double MaxLogitScale { get; init; } = 100;

    /// <summary>A small configuration that trains on a CPU in a minute or two (used by <c>medvlp demo</c>).</summary>
    public static VisionLanguageModelConfig Small(int vocabularySize) => new()
    {
        Volume = new VolumeEncoderConfig { InputSize = 32, PatchSize = 8, Width = 64, Depth = 2, Heads = 4, MlpRatio = 2 },
        Text = new BertConfig
        {
            VocabSize = vocabularySize,
            HiddenSize = 64,
            NumHiddenLayers = 2,
            NumAttentionHeads = 4,
            IntermediateSize = 128,
            MaxPositionEmbeddings = 96,
            HiddenDropoutProb = 0,
            AttentionProbsDropoutProb = 0,
            AddPoolingLayer = false,
        },
        EmbeddingDim = 64,
        TextPooling = TextPooling.Mean,
        MaxTextTokens = 96,
    };

    internal void Validate()
    {
        ArgumentNullException.ThrowIfNull(Volume);
        ArgumentNullException.ThrowIfNull(Text);
        Volume.Validate();
        Text.Validate();
        if (EmbeddingDim <= 0 || MaxTextTokens < 2 || MaxTextTokens > Text.MaxPositionEmbeddings || !(InitialTemperature > 0) || !(MaxLogitScale > 0))
        {
            throw new ArgumentException($"Invalid model configuration: embedding dim {EmbeddingDim}, max text tokens {MaxTextTokens} (<= {Text.MaxPositionEmbeddings}), temperature {InitialTemperature}.");
        }
    }

    /// <summary>JSON options of model-package files: snake_case names as in Hugging Face configs, enums as strings.</summary>
    internal static JsonSerializerOptions JsonOptions { get; } = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
    };
}
