using System.Text.Json;
using System.Text.Json.Serialization;

namespace MedVlp.Modeling;

/// <summary>Sizes of the 3D vision transformer that encodes volumes (<see cref="VolumeTransformer"/>). (Before 0.2:
/// <c>VolumeEncoderConfig</c>; it configures the transformer, not the <see cref="Inference.VolumeEncoder"/> wrapper.)</summary>
public sealed record VolumeTransformerConfig
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

    internal void Validate(string prefix = "")
    {
        ModelLimits.Check(prefix + "input_size", InputSize, 1, ModelLimits.MaxInputSize);
        ModelLimits.Check(prefix + "patch_size", PatchSize, 1, ModelLimits.MaxInputSize);
        ModelLimits.Check(prefix + "in_channels", InChannels, 1, ModelLimits.MaxChannels);
        ModelLimits.Check(prefix + "width", Width, 1, ModelLimits.MaxWidth);
        ModelLimits.Check(prefix + "depth", Depth, 0, ModelLimits.MaxLayers);
        ModelLimits.Check(prefix + "heads", Heads, 1, ModelLimits.MaxHeads);
        ModelLimits.Check(prefix + "mlp_ratio", MlpRatio, 1e-3, ModelLimits.MaxMlpRatio);
        ModelLimits.Check(prefix + "layer_norm_eps", LayerNormEps, 1e-30, 1);
        if (InputSize % PatchSize != 0)
        {
            throw new ArgumentException($"expected a multiple of patch_size {PatchSize}, found {InputSize}.", prefix + "input_size");
        }

        if (Width % Heads != 0)
        {
            throw new ArgumentException($"expected width {Width} to be a multiple of heads, found {Heads}.", prefix + "heads");
        }

        ModelLimits.Check(prefix + "input_size", (long)GridSize * GridSize * GridSize, 1, ModelLimits.MaxTokens, "patch tokens (input_size / patch_size)^3");
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

    internal void Validate(string prefix = "")
    {
        ModelLimits.Check(prefix + "vocab_size", VocabSize, 1, ModelLimits.MaxVocabulary);
        ModelLimits.Check(prefix + "hidden_size", HiddenSize, 1, ModelLimits.MaxWidth);
        ModelLimits.Check(prefix + "num_hidden_layers", NumHiddenLayers, 0, ModelLimits.MaxLayers);
        ModelLimits.Check(prefix + "num_attention_heads", NumAttentionHeads, 1, ModelLimits.MaxHeads);
        ModelLimits.Check(prefix + "intermediate_size", IntermediateSize, 1, ModelLimits.MaxWidth * (long)ModelLimits.MaxMlpRatio);
        ModelLimits.Check(prefix + "max_position_embeddings", MaxPositionEmbeddings, 2, ModelLimits.MaxPositions);
        ModelLimits.Check(prefix + "type_vocab_size", TypeVocabSize, 1, 1024);
        ModelLimits.Check(prefix + "layer_norm_eps", LayerNormEps, 1e-30, 1);
        if (HiddenSize % NumAttentionHeads != 0)
        {
            throw new ArgumentException($"expected hidden_size {HiddenSize} to be a multiple of num_attention_heads, found {NumAttentionHeads}.", prefix + "num_attention_heads");
        }

        if (HiddenDropoutProb is < 0 or >= 1 || double.IsNaN(HiddenDropoutProb))
        {
            throw new ArgumentException($"expected a probability in [0, 1), found {HiddenDropoutProb}.", prefix + "hidden_dropout_prob");
        }

        if (AttentionProbsDropoutProb is < 0 or >= 1 || double.IsNaN(AttentionProbsDropoutProb))
        {
            throw new ArgumentException($"expected a probability in [0, 1), found {AttentionProbsDropoutProb}.", prefix + "attention_probs_dropout_prob");
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

/// <summary>How a model's image patch tokens become one embedding per volume.</summary>
public enum ImagePooling
{
    /// <summary>Attention pooling: a learned query attends over the tokens (COLIPRI's released model).</summary>
    Attention,

    /// <summary>The channel-wise maximum over the tokens: a finding seen in any patch sets its features, wherever it lies.</summary>
    Max,
}

/// <summary>
/// The configuration of the registered <c>clip3d</c> architecture, a CLIP-style dual encoder (<see cref="DualEncoderModel"/>):
/// a <see cref="VolumeTransformer"/> for volumes, a <see cref="BertModel"/> for reports, two projections into a shared
/// space and a learned logit scale. Stored as the <c>model</c> section of a package's <c>config.json</c> with
/// <c>"type": "clip3d"</c>. (Before 0.2: <c>VisionLanguageModelConfig</c>.)
/// </summary>
public sealed record Clip3dConfig : ArchitectureConfig
{
    /// <summary>The registry name of this architecture.</summary>
    public const string ArchitectureName = "clip3d";

    /// <inheritdoc />
    public override string Architecture => ArchitectureName;

    /// <summary>The volume encoder.</summary>
    public VolumeTransformerConfig Volume { get; init; } = new();

    /// <summary>The text encoder.</summary>
    public BertConfig Text { get; init; } = new();

    /// <summary>Width of the shared embedding space.</summary>
    public int EmbeddingDim { get; init; } = 64;

    /// <summary>How text token states are pooled.</summary>
    public TextPooling TextPooling { get; init; } = TextPooling.Cls;

    /// <summary>Longest tokenized text, special tokens included (at most <see cref="BertConfig.MaxPositionEmbeddings"/>).</summary>
    public int MaxTextTokens { get; init; } = 128;

    /// <summary>Initial softmax temperature (CLIP: 0.07); the model learns <c>log(logit scale) = log(1 / temperature)</c>.</summary>
    public double InitialTemperature { get; init; } = 0.07;

    /// <summary>Upper bound of the logit scale (CLIP: 100).</summary>
    public double MaxLogitScale { get; init; } = 100;

    /// <summary>
    /// The <c>tiny</c> size: trains on a CPU in a minute or two (used by <c>medvlp demo</c>): 32^3 input, 8^3 patches,
    /// width 64, two layers each side.
    /// </summary>
    /// <param name="vocabularySize">Rows of the word embedding (the tokenizer's vocabulary; bert-base-uncased: 30522).</param>
    public static Clip3dConfig Tiny(int vocabularySize = 30522) => new()
    {
        Volume = new VolumeTransformerConfig { InputSize = 32, PatchSize = 8, Width = 64, Depth = 2, Heads = 4, MlpRatio = 2 },
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

    /// <summary>
    /// The <c>full</c> size, MedBLIP's volume geometry (224^3 input, 32^3 patches) with a ViT-B/BERT-base pair: width 768,
    /// 12 layers and 12 heads each side, a 512-wide shared space, CLS pooling, 128 tokens.
    /// </summary>
    /// <param name="vocabularySize">Rows of the word embedding (bert-base-uncased: 30522).</param>
    public static Clip3dConfig Full(int vocabularySize = 30522) => new()
    {
        Volume = new VolumeTransformerConfig { InputSize = 224, PatchSize = 32, Width = 768, Depth = 12, Heads = 12, MlpRatio = 4 },
        Text = BertConfig.BertBase with { VocabSize = vocabularySize },
        EmbeddingDim = 512,
        TextPooling = TextPooling.Cls,
        MaxTextTokens = 128,
    };

    /// <inheritdoc />
    public override int? TokenizerVocabularySize(string tokenizer) => tokenizer == "text" ? Text?.VocabSize : null;

    /// <inheritdoc />
    public override long? EstimateParameters()
    {
        checked
        {
            long w = Volume.Width, c = Volume.InChannels, p = Volume.PatchSize, g = Volume.GridSize, h = (long)Math.Round(Volume.Width * Volume.MlpRatio);
            var vision = (w * c * p * p * p) + w + w + (((g * g * g) + 1) * w)
                + (Volume.Depth * ((4 * w) + (3 * w * w) + (3 * w) + (w * w) + w + (h * w) + h + (w * h) + w))
                + (2 * w) + w + (w * w) + w + (2 * w * w) + (2 * w) + (w * w) + w;
            long d = Text.HiddenSize, i = Text.IntermediateSize;
            var text = ((long)Text.VocabSize + Text.MaxPositionEmbeddings + Text.TypeVocabSize) * d + (2 * d)
                + (Text.NumHiddenLayers * ((4 * ((d * d) + d)) + (2 * d) + (i * d) + i + (d * i) + d + (2 * d)))
                + (Text.AddPoolingLayer ? (d * d) + d : 0);
            return vision + text + ((long)EmbeddingDim * w) + ((long)EmbeddingDim * d) + 1;
        }
    }

    /// <summary>The <c>tiny</c> size (kept for code written before the registry).</summary>
    public static Clip3dConfig Small(int vocabularySize) => Tiny(vocabularySize);

    /// <inheritdoc />
    public override void Validate()
    {
        if (Volume is null)
        {
            throw new ArgumentException("the volume encoder section is missing.", "volume");
        }

        if (Text is null)
        {
            throw new ArgumentException("the text encoder section is missing.", "text");
        }

        Volume.Validate("volume.");
        Text.Validate("text.");
        ModelLimits.Check("embedding_dim", EmbeddingDim, 1, ModelLimits.MaxWidth);
        ModelLimits.Check("max_text_tokens", MaxTextTokens, 2, Text.MaxPositionEmbeddings, "text.max_position_embeddings");
        ModelLimits.Check("initial_temperature", InitialTemperature, 1e-6, 1e6);
        ModelLimits.Check("max_logit_scale", MaxLogitScale, 1e-6, 1e6);
    }
}

/// <summary>
/// Sane bounds on architecture sizes, checked by every configuration's <see cref="ArchitectureConfig.Validate"/> before a
/// module is built, so that a hostile or mistyped <c>config.json</c> (<c>num_hidden_layers: 1000000</c>) fails with a
/// clear error instead of exhausting memory. They are far above every model of the papers (EVA ViT-g: width 1408,
/// 39 layers; OPT/BioMedLM: width 2560, 32 layers).
/// </summary>
public static class ModelLimits
{
    /// <summary>Largest hidden width.</summary>
    public const int MaxWidth = 16384;

    /// <summary>Largest number of layers of one stack.</summary>
    public const int MaxLayers = 512;

    /// <summary>Largest number of attention heads.</summary>
    public const int MaxHeads = 256;

    /// <summary>Largest MLP ratio.</summary>
    public const double MaxMlpRatio = 16;

    /// <summary>Largest vocabulary.</summary>
    public const int MaxVocabulary = 1 << 20;

    /// <summary>Largest number of learned positions.</summary>
    public const int MaxPositions = 1 << 16;

    /// <summary>Largest edge of a model input, in voxels or pixels.</summary>
    public const int MaxInputSize = 2048;

    /// <summary>Largest number of input channels.</summary>
    public const int MaxChannels = 64;

    /// <summary>Largest number of patch tokens of one input.</summary>
    public const long MaxTokens = 1 << 16;

    /// <summary>Throws an <see cref="ArgumentException"/> whose parameter name is <paramref name="field"/> unless
    /// <paramref name="value"/> lies in [<paramref name="min"/>, <paramref name="max"/>].</summary>
    public static void Check(string field, double value, double min, double max, string? maxName = null)
    {
        if (double.IsNaN(value) || value < min || value > max)
        {
            throw new ArgumentException($"expected a value in [{min}, {(maxName is null ? max.ToString(System.Globalization.CultureInfo.InvariantCulture) : $"{maxName} = {max}")}], found {value}.", field);
        }
    }
}

/// <summary>JSON conventions of model-package files.</summary>
internal static class ModelJson
{
    /// <summary>Snake_case names as in Hugging Face configs, enums as strings.</summary>
    public static JsonSerializerOptions Options { get; } = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
    };
}
