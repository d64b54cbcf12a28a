using MedVlp.Modeling;
using MedVlp.Modeling.Backbones;

namespace MedVlp.Architectures.MFlag;

/// <summary>
/// The sizes of the registered <c>mflag</c> architecture (M-FLAG, Liu et al., MICCAI 2023): a trainable ResNet-50 image
/// encoder, a frozen BERT text encoder and two projectors, laid out as the released <c>ResNet_CXRBert</c>
/// (<c>encoder</c>, <c>proj_v</c>, <c>proj_t</c>, <c>lm_model</c>).
/// </summary>
public sealed record MFlagConfig : ArchitectureConfig
{
    /// <summary>The registry name of this architecture.</summary>
    public const string ArchitectureName = "mflag";

    /// <inheritdoc />
    public override string Architecture => ArchitectureName;

    /// <summary>The image encoder (torchvision's ResNet-50 without <c>fc</c>; 1 or 3 input channels).</summary>
    public ResNetConfig Image { get; init; } = ResNetConfig.ResNet50;

    /// <summary>The text encoder (released: CXR-BERT-general, a BERT-base).</summary>
    public BertConfig Text { get; init; } = BertConfig.BertBase;

    /// <summary>Hidden width of both projectors (released: 2048).</summary>
    public int ProjectionHidden { get; init; } = 2048;

    /// <summary>Width of the shared space, the projectors' output (released: 1024).</summary>
    public int EmbeddingDim { get; init; } = 1024;

    /// <summary>Longest tokenized report, special tokens included.</summary>
    public int MaxTextTokens { get; init; } = 128;

    /// <summary>Edge of the preprocessed image in pixels (the released code's 224; tiny: 64).</summary>
    public int ImageSize { get; init; } = 224;

    /// <summary>The fixed multiplier of cosine similarities in zero-shot classification: M-FLAG learns no temperature
    /// (its alignment loss has none). Default 100 (CLIP's largest scale).</summary>
    public double ZeroShotLogitScale { get; init; } = 100;

    /// <summary>The <c>full</c> size: the released model (ResNet-50 on 3-channel images, BERT-base, 2048 -> 1024 projectors).</summary>
    /// <param name="vocabularySize">Rows of the word embedding (CXR-BERT-general: 30522).</param>
    public static MFlagConfig Full(int vocabularySize = 30522) => new() { Text = BertConfig.BertBase with { VocabSize = vocabularySize } };

    /// <summary>The <c>tiny</c> size for CPU tests and demos: grey images, <see cref="ResNetConfig.Tiny"/> (128 features),
    /// a 2-layer BERT of width 32, projectors 64 -> 32.</summary>
    /// <param name="vocabularySize">Rows of the word embedding (bert-base-uncased: 30522).</param>
    public static MFlagConfig Tiny(int vocabularySize = 30522) => new()
    {
        Image = ResNetConfig.Tiny with { InChannels = 1 },
        Text = new BertConfig
        {
            VocabSize = vocabularySize,
            HiddenSize = 32,
            NumHiddenLayers = 2,
            NumAttentionHeads = 2,
            IntermediateSize = 64,
            MaxPositionEmbeddings = 64,
            HiddenDropoutProb = 0,
            AttentionProbsDropoutProb = 0,
            AddPoolingLayer = false,
        },
        ProjectionHidden = 64,
        EmbeddingDim = 32,
        MaxTextTokens = 64,
        ImageSize = 64,
    };

    /// <inheritdoc />
    public override int? TokenizerVocabularySize(string tokenizer) => tokenizer == "text" ? Text?.VocabSize : null;

    /// <inheritdoc />
    public override void Validate()
    {
        if (Image is null)
        {
            throw new ArgumentException("the image encoder section is missing.", "image");
        }

        if (Text is null)
        {
            throw new ArgumentException("the text encoder section is missing.", "text");
        }

        try
        {
            Image.Validate();
        }
        catch (ArgumentException ex)
        {
            throw new ArgumentException(ex.Message, "image", ex);
        }

        Text.Validate("text.");
        ModelLimits.Check("projection_hidden", ProjectionHidden, 1, ModelLimits.MaxWidth);
        ModelLimits.Check("embedding_dim", EmbeddingDim, 1, ModelLimits.MaxWidth);
        ModelLimits.Check("image_size", ImageSize, 32, ModelLimits.MaxInputSize);
        ModelLimits.Check("zero_shot_logit_scale", ZeroShotLogitScale, 1e-3, 1e4);
        ModelLimits.Check("max_text_tokens", MaxTextTokens, 2, Text.MaxPositionEmbeddings, "text.max_position_embeddings");
    }
}
