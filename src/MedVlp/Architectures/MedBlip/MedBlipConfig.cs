using System.Text.Json.Serialization;
using MedVlp.Modeling;
using MedVlp.Modeling.Backbones;

namespace MedVlp.Architectures.MedBlip;

/// <summary>
/// The configuration of the registered <c>medblip</c> architecture (<see cref="MedBlipModel"/>, after Qybc/MedBLIP):
/// a trainable 3D patch embedding and 3D position embedding in front of frozen EVA ViT blocks, <c>ln_vision</c>, the
/// BLIP-2 Q-Former (MedQFormer), contrastive projections and a learnable temperature, the projection into the language
/// model and a frozen GPT-2-layout language model (BioMedLM at full size).
/// </summary>
public sealed record MedBlipConfig : ArchitectureConfig
{
    /// <summary>The registry name of this architecture.</summary>
    public const string ArchitectureName = "medblip";

    /// <inheritdoc />
    public override string Architecture => ArchitectureName;

    /// <summary>Edge length of the cubic input volume (MedBLIP: 224).</summary>
    public int InputSize { get; init; } = 224;

    /// <summary>Edge length of a cubic patch of <c>patch_embed_3d</c> (MedBLIP: 32, giving 7^3 = 343 tokens + CLS).</summary>
    public int PatchSize { get; init; } = 32;

    /// <summary>Token width of the vision transformer (EVA ViT-g: 1408).</summary>
    public int VisionWidth { get; init; } = 1408;

    /// <summary>EVA blocks (EVA ViT-g as BLIP-2 uses it: 39).</summary>
    public int VisionDepth { get; init; } = 39;

    /// <summary>Attention heads of the vision blocks (16).</summary>
    public int VisionHeads { get; init; } = 16;

    /// <summary>MLP hidden size as <c>int(width * ratio)</c> (EVA ViT-g: 4.3637 gives 6144).</summary>
    public double VisionMlpRatio { get; init; } = 4.3637;

    /// <summary>The Q-Former (its <c>encoder_width</c> must equal <see cref="VisionWidth"/>).</summary>
    public QFormerConfig QFormer { get; init; } = QFormerConfig.Blip2;

    /// <summary>The frozen language model (full size: BioMedLM, a <c>GPT2LMHeadModel</c> of width 2560).</summary>
    public Gpt2Config LanguageModel { get; init; } = BioMedLm;

    /// <summary>Width of the contrastive space (256).</summary>
    public int EmbedDim { get; init; } = 256;

    /// <summary>Initial value of the learnable temperature <c>temp</c> (0.07).</summary>
    public double InitialTemperature { get; init; } = 0.07;

    /// <summary>Longest tokenized text of the Q-Former's text branch and of the prompt (released: 100).</summary>
    public int MaxTextTokens { get; init; } = 100;

    /// <summary>Whether the language-modelling loss also scores the prompt tokens, as released (true), or the answer only.</summary>
    public bool ScorePrompt { get; init; } = true;

    /// <summary>Patches along each axis.</summary>
    [JsonIgnore]
    public int GridSize => InputSize / PatchSize;

    /// <summary>Image tokens the Q-Former attends to: the patches and the CLS token.</summary>
    [JsonIgnore]
    public int ImageTokens => (GridSize * GridSize * GridSize) + 1;

    /// <summary>BioMedLM (stanford-crfm/BioMedLM): GPT-2 layout, 28896 tokens, 1024 positions, 32 layers of width 2560, 20 heads.</summary>
    public static Gpt2Config BioMedLm { get; } = new() { VocabSize = 28896, NPositions = 1024, NEmbd = 2560, NLayer = 32, NHead = 20 };

    /// <summary>The paper's size: 224^3 volumes in 32^3 patches, EVA ViT-g blocks, BLIP-2 Q-Former, BioMedLM.</summary>
    public static MedBlipConfig Full() => new();

    /// <summary>
    /// The <c>tiny</c> size for CPU tests and <c>medvlp demo</c>: 32^3 volumes in 8^3 patches (64 tokens + CLS), 2 vision
    /// blocks of width 64, a 4-layer Q-Former of width 64 with 8 queries (initialiser std 0.1 instead of BERT's 0.02, which
    /// suits width 768), a 2-layer GPT-2 of width 64 over the GPT-2 vocabulary (50257), no dropout.
    /// </summary>
    /// <param name="qformerVocabulary">Rows of the Q-Former's word embedding (its WordPiece vocabulary; bert-base-uncased: 30522).</param>
    public static MedBlipConfig Tiny(int qformerVocabulary = 30522) => new()
    {
        InputSize = 32,
        PatchSize = 8,
        VisionWidth = 64,
        VisionDepth = 2,
        VisionHeads = 4,
        VisionMlpRatio = 2,
        QFormer = new QFormerConfig
        {
            VocabSize = qformerVocabulary,
            HiddenSize = 64,
            NumHiddenLayers = 4,
            NumAttentionHeads = 4,
            IntermediateSize = 128,
            MaxPositionEmbeddings = 128,
            EncoderWidth = 64,
            CrossAttentionFrequency = 2,
            QueryTokens = 8,
            HiddenDropoutProb = 0,
            AttentionProbsDropoutProb = 0,
            // BERT's 0.02 suits width 768 (and pre-trained bert-base weights); at width 64 it leaves each sub-layer's output
            // ~10x below the residual, so the query outputs barely depend on the image (across-batch std 0.003 vs 0.09).
            InitializerRange = 0.1,
        },
        LanguageModel = new Gpt2Config { VocabSize = 50257, NPositions = 256, NEmbd = 64, NLayer = 2, NHead = 4, EmbdPdrop = 0, ResidPdrop = 0, AttnPdrop = 0 },
        EmbedDim = 32,
        MaxTextTokens = 100,
    };

    /// <inheritdoc />
    public override int? TokenizerVocabularySize(string tokenizer) => tokenizer switch
    {
        "text" => QFormer?.VocabSize,
        MedBlipModel.LanguageTokenizerName => LanguageModel?.VocabSize,
        _ => null,
    };

    /// <inheritdoc />
    public override long? EstimateParameters()
    {
        checked
        {
            long w = VisionWidth, p = PatchSize, h = (long)(VisionWidth * VisionMlpRatio);
            var vision = (w * p * p * p) + w + w + (ImageTokens * w)
                + (VisionDepth * ((4 * w) + (3 * w * w) + (2 * w) + (w * w) + w + (h * w) + h + (w * h) + w)) + (2 * w);
            var q = QFormer;
            long d = q.HiddenSize, i = q.IntermediateSize, e = q.EncoderWidth;
            long attention = (3 * ((d * d) + d)) + (d * d) + d + (2 * d);
            long cross = ((d * d) + d) + (2 * ((e * d) + d)) + (d * d) + d + (2 * d);
            long ffn = (i * d) + i + (d * i) + d + (2 * d);
            long layers = 0;
            for (var n = 0; n < q.NumHiddenLayers; n++)
            {
                layers += attention + (2 * ffn) + (n % q.CrossAttentionFrequency == 0 ? cross : 0);
            }

            var qformer = (((long)q.VocabSize + q.MaxPositionEmbeddings) * d) + (2 * d) + layers + ((long)q.QueryTokens * d);
            var g = LanguageModel;
            long n2 = g.NEmbd, inner = g.NInner ?? (4 * g.NEmbd);
            var lm = (((long)g.VocabSize + g.NPositions) * n2) + (2 * n2)
                + (g.NLayer * ((4 * n2) + (3 * n2 * n2) + (3 * n2) + (n2 * n2) + n2 + (inner * n2) + inner + (n2 * inner) + n2))
                + (g.TieWordEmbeddings ? 0 : (long)g.VocabSize * n2);
            var heads = (3 * ((d * EmbedDim) + EmbedDim)) + ((d * n2) + n2) + 1;
            return vision + qformer + lm + heads;
        }
    }

    /// <inheritdoc />
    public override void Validate()
    {
        ModelLimits.Check("input_size", InputSize, 1, ModelLimits.MaxInputSize);
        ModelLimits.Check("patch_size", PatchSize, 1, ModelLimits.MaxInputSize);
        ModelLimits.Check("vision_width", VisionWidth, 1, ModelLimits.MaxWidth);
        ModelLimits.Check("vision_depth", VisionDepth, 0, ModelLimits.MaxLayers);
        ModelLimits.Check("vision_heads", VisionHeads, 1, ModelLimits.MaxHeads);
        ModelLimits.Check("vision_mlp_ratio", VisionMlpRatio, 1e-3, ModelLimits.MaxMlpRatio);
        ModelLimits.Check("embed_dim", EmbedDim, 1, ModelLimits.MaxWidth);
        ModelLimits.Check("initial_temperature", InitialTemperature, 1e-6, 1e6);
        if (InputSize % PatchSize != 0)
        {
            throw new ArgumentException($"expected a multiple of patch_size {PatchSize}, found {InputSize}.", "input_size");
        }

        if (VisionWidth % VisionHeads != 0)
        {
            throw new ArgumentException($"expected vision_width {VisionWidth} to be a multiple of vision_heads, found {VisionHeads}.", "vision_heads");
        }

        ModelLimits.Check("input_size", (long)GridSize * GridSize * GridSize, 1, ModelLimits.MaxTokens, "patch tokens (input_size / patch_size)^3");
        var q = QFormer ?? throw new ArgumentException("the Q-Former section is missing.", "q_former");
        var g = LanguageModel ?? throw new ArgumentException("the language model section is missing.", "language_model");
        ModelLimits.Check("q_former.vocab_size", q.VocabSize, 1, ModelLimits.MaxVocabulary);
        ModelLimits.Check("q_former.hidden_size", q.HiddenSize, 1, ModelLimits.MaxWidth);
        ModelLimits.Check("q_former.num_hidden_layers", q.NumHiddenLayers, 0, ModelLimits.MaxLayers);
        ModelLimits.Check("q_former.num_attention_heads", q.NumAttentionHeads, 1, ModelLimits.MaxHeads);
        ModelLimits.Check("q_former.intermediate_size", q.IntermediateSize, 1, ModelLimits.MaxWidth * (long)ModelLimits.MaxMlpRatio);
        ModelLimits.Check("q_former.max_position_embeddings", q.MaxPositionEmbeddings, 2, ModelLimits.MaxPositions);
        ModelLimits.Check("q_former.query_tokens", q.QueryTokens, 1, 4096);
        ModelLimits.Check("q_former.encoder_width", q.EncoderWidth, VisionWidth, VisionWidth, "vision_width");
        ModelLimits.Check("language_model.vocab_size", g.VocabSize, 1, ModelLimits.MaxVocabulary);
        ModelLimits.Check("language_model.n_embd", g.NEmbd, 1, ModelLimits.MaxWidth);
        ModelLimits.Check("language_model.n_layer", g.NLayer, 0, ModelLimits.MaxLayers);
        ModelLimits.Check("language_model.n_head", g.NHead, 1, ModelLimits.MaxHeads);
        ModelLimits.Check("language_model.n_positions", g.NPositions, 2, ModelLimits.MaxPositions);
        ModelLimits.Check("language_model.n_inner", g.NInner ?? g.NEmbd, 1, ModelLimits.MaxWidth * (long)ModelLimits.MaxMlpRatio);
        ModelLimits.Check("max_text_tokens", MaxTextTokens, 2, q.MaxPositionEmbeddings, "q_former.max_position_embeddings");
        try
        {
            q.Validate();
        }
        catch (ArgumentException ex)
        {
            throw new ArgumentException(ex.Message, "q_former", ex);
        }

        try
        {
            g.Validate();
        }
        catch (ArgumentException ex)
        {
            throw new ArgumentException(ex.Message, "language_model", ex);
        }

        ModelLimits.Check("max_text_tokens", MaxTextTokens + q.QueryTokens + 16, 2, g.NPositions, "language_model.n_positions (prompt + queries + answer)");
    }
}
