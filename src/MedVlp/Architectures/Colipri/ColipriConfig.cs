using MedVlp.Modeling;
using MedVlp.Modeling.Backbones;

namespace MedVlp.Architectures.Colipri;

/// <summary>Which contrastive image-report objective COLIPRI trains with (the paper does not settle it: both are offered).</summary>
public enum ColipriContrastive
{
    /// <summary>CLIP's softmax InfoNCE over the batch (default).</summary>
    Clip,

    /// <summary>SigLIP's pairwise sigmoid loss with a learnable bias.</summary>
    SigLip,
}

/// <summary>
/// The configuration of a COLIPRI model. Published (model card, microsoft/colipri): Primus 3D ViT, patch 8, input
/// 192^3 -> 24^3 tokens, a Conv3d <c>projector</c> to 768, attention pooling to a 768-d embedding, a BERT-layout text
/// encoder (CXR-BERT), zero-shot over positive / negative prompt pairs. Not published, so MedVlp's documented defaults:
/// depth 16 x width 864 (Primus-M; the card leaves 16 x 864 vs 24 x 768 open), no absolute position embedding, the
/// report decoder's size, the masking ratio and target of masked image modelling, the contrastive variant (CLIP) and the
/// opposite-sentence loss's form (<see cref="MedVlp.Losses.OppositeSentenceLoss"/>), and the objective weights (1 each).
/// </summary>
public sealed record ColipriConfig
{
    /// <summary>The image encoder (Primus-M by default).</summary>
    public PrimusEncoderOptions Encoder { get; init; } = new();

    /// <summary>The text encoder (BERT-base layout, as CXR-BERT).</summary>
    public BertConfig Text { get; init; } = new();

    /// <summary>Width of the shared embedding space and of the projected patch tokens (768).</summary>
    public int EmbeddingDim { get; init; } = 768;

    /// <summary>Heads of the attention pooling (12).</summary>
    public int PoolHeads { get; init; } = 12;

    /// <summary>Longest report the text encoder and the decoder take, special tokens included.</summary>
    public int MaxTextTokens { get; init; } = 256;

    /// <summary>Report decoder layers (MedVlp default 6).</summary>
    public int DecoderLayers { get; init; } = 6;

    /// <summary>Report decoder width (MedVlp default 768).</summary>
    public int DecoderWidth { get; init; } = 768;

    /// <summary>Report decoder heads (MedVlp default 12).</summary>
    public int DecoderHeads { get; init; } = 12;

    /// <summary>The contrastive objective (default CLIP).</summary>
    public ColipriContrastive Contrastive { get; init; } = ColipriContrastive.Clip;

    /// <summary>Initial temperature of the contrastive logits (CLIP: 0.07; SigLIP starts at scale 10, bias -10).</summary>
    public double InitialTemperature { get; init; } = 0.07;

    /// <summary>Fraction of patch tokens masked for masked image modelling (MedVlp default 0.6, SimMIM-style mask tokens).</summary>
    public double MaskRatio { get; init; } = 0.6;

    /// <summary>Weight of the contrastive term.</summary>
    public double ContrastiveWeight { get; init; } = 1;

    /// <summary>Weight of the report-generation (language-modelling) term.</summary>
    public double ReportWeight { get; init; } = 1;

    /// <summary>Weight of the masked-image-modelling term.</summary>
    public double MaskedImageWeight { get; init; } = 1;

    /// <summary>Weight of the opposite-sentence term.</summary>
    public double OppositeSentenceWeight { get; init; } = 1;

    /// <summary>The paper's size (Primus-M, BERT-base, 768-d space) over a vocabulary.</summary>
    public static ColipriConfig Full(int vocabularySize) => new() { Text = new BertConfig { VocabSize = vocabularySize } };

    /// <summary>A CPU-sized model for tests and demos: 64^3 input, patch 8, width 72, 2 blocks; BERT 2 x 64.</summary>
    public static ColipriConfig Tiny(int vocabularySize) => new()
    {
        Encoder = new PrimusEncoderOptions { InputSize = 64, PatchSize = 8, Width = 72, Depth = 2, Heads = 2, LayerScaleInit = 0.1 },
        Text = new BertConfig
        {
            VocabSize = vocabularySize,
            HiddenSize = 64,
            NumHiddenLayers = 2,
            NumAttentionHeads = 4,
            IntermediateSize = 128,
            MaxPositionEmbeddings = 128,
            HiddenDropoutProb = 0,
            AttentionProbsDropoutProb = 0,
            AddPoolingLayer = false,
        },
        EmbeddingDim = 64,
        PoolHeads = 4,
        MaxTextTokens = 128,
        DecoderLayers = 2,
        DecoderWidth = 64,
        DecoderHeads = 4,
    };

    internal void Validate()
    {
        ArgumentNullException.ThrowIfNull(Encoder);
        ArgumentNullException.ThrowIfNull(Text);
        Encoder.Validate();
        Text.Validate();
        if (EmbeddingDim <= 0 || PoolHeads <= 0 || EmbeddingDim % PoolHeads != 0 || DecoderLayers < 1 || DecoderWidth <= 0 || DecoderHeads <= 0 ||
            DecoderWidth % DecoderHeads != 0 || MaxTextTokens < 4 || MaxTextTokens > Text.MaxPositionEmbeddings || !(InitialTemperature > 0) ||
            MaskRatio is <= 0 or >= 1 || ContrastiveWeight < 0 || ReportWeight < 0 || MaskedImageWeight < 0 || OppositeSentenceWeight < 0)
        {
            throw new ArgumentException(
                $"Invalid COLIPRI configuration: embedding {EmbeddingDim} / {PoolHeads} heads, decoder {DecoderLayers} x {DecoderWidth} / {DecoderHeads} heads, max tokens {MaxTextTokens} (<= {Text.MaxPositionEmbeddings}), mask ratio {MaskRatio} in (0, 1), weights >= 0.");
        }
    }
}
