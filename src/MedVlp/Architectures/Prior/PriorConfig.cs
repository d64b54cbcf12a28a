using MedVlp.Modeling;
using MedVlp.Modeling.Backbones;

namespace MedVlp.Architectures.Prior;

/// <summary>
/// The sizes of the registered <c>prior</c> architecture (PRIOR, Cheng et al., ICCV 2023), laid out as the released
/// <c>Prior</c> module (QtacierP/PRIOR, <c>codes/prior/models/prior.py</c>): a ResNet-50 image encoder with CLIP attention
/// pooling, a BERT text encoder whose token states are projected and averaged per sentence, the local alignment module,
/// the SimSiam predictor, the sentence prototype bank, the image reconstruction decoder and the sentence (report) decoder.
/// <see cref="Image"/> with <see cref="ResNetConfig.SpatialDims"/> = 3 builds the same model for volumes (3D convolutions,
/// <c>d*h*w</c> local tokens, a 3D reconstruction decoder).
/// </summary>
public sealed record PriorConfig : ArchitectureConfig
{
    /// <summary>The registry name of this architecture.</summary>
    public const string ArchitectureName = "prior";

    /// <inheritdoc />
    public override string Architecture => ArchitectureName;

    /// <summary>The image encoder (released: torchvision's ResNet-50 on 1-channel images).</summary>
    public ResNetConfig Image { get; init; } = ResNetConfig.ResNet50 with { InChannels = 1 };

    /// <summary>The side of the (square or cubic) input image (released: 224, a 7 x 7 <c>layer4</c> map).</summary>
    public int ImageSize { get; init; } = 224;

    /// <summary>The text encoder (released: Bio_ClinicalBERT, a BERT-base with 28996 tokens).</summary>
    public BertConfig Text { get; init; } = BertConfig.BertBase with { VocabSize = 28996 };

    /// <summary>The shared width D of local and global embeddings (released: 768).</summary>
    public int EmbeddingDim { get; init; } = 768;

    /// <summary>Heads of the image attention pooling (released: 8).</summary>
    public int ImagePoolHeads { get; init; } = 8;

    /// <summary>Heads of the sentence attention pooling (released: 8).</summary>
    public int SentencePoolHeads { get; init; } = 8;

    /// <summary>Prototypes K of the sentence prototype bank (released: 512).</summary>
    public int Prototypes { get; init; } = 512;

    /// <summary>Gumbel-softmax temperature of the bank (released: 0.9, fixed).</summary>
    public double PrototypeTemperature { get; init; } = 0.9;

    /// <summary>Learned queries of the sentence decoder, and the most sentences a report keeps in stage 3 (released: 16).</summary>
    public int Queries { get; init; } = 16;

    /// <summary>
    /// The sentence decoder: a BERT with cross-attention to the local image tokens and a causal self-attention mask
    /// (released: Bio_ClinicalBERT's configuration with 8 layers; <c>hidden_size</c> must equal <see cref="EmbeddingDim"/>).
    /// </summary>
    public BertConfig Decoder { get; init; } = BertConfig.BertBase with { VocabSize = 28996, NumHiddenLayers = 8, AddPoolingLayer = false };

    /// <summary>Channel dropout on the local image map before reconstruction (released: 0.5).</summary>
    public double ImageReconstructionDropout { get; init; } = 0.5;

    /// <summary>The initial global temperature (released: 0.01, logit scale log(1 / 0.01)).</summary>
    public double Temperature { get; init; } = 0.01;

    /// <summary>The initial local (sentence) temperature (released: 0.01).</summary>
    public double LocalTemperature { get; init; } = 0.01;

    /// <summary>Longest tokenized report, special tokens included (released: 256).</summary>
    public int MaxTextTokens { get; init; } = 256;

    /// <summary>Most sentences per report in stages 1 and 2 (the padded width of the sentence stacks).</summary>
    public int MaxSentences { get; init; } = 32;

    /// <summary>The token ids that end a sentence (the tokenizer's ".", "!" and "?"; see <see cref="SentenceEnds"/>), with which
    /// <see cref="PriorModel.EncodeTexts"/> splits a text into sentences as training does; empty: every text is one sentence.</summary>
    public IReadOnlyList<int> SentenceEndTokenIds { get; init; } = [];

    /// <summary>The number of local image tokens: the <c>layer4</c> map's positions (<c>(ImageSize / 32)^dims</c>).</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public int LocalTokens => (int)Math.Pow(MapSide, Image?.SpatialDims ?? 2);

    /// <summary>The side of the <c>layer4</c> map (<c>ImageSize / 32</c>).</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public int MapSide => ImageSize / 32;

    /// <summary>The <c>full</c> size: the released model (1-channel 224 x 224 images, ResNet-50, Bio_ClinicalBERT, D = 768).</summary>
    /// <param name="vocabularySize">Rows of the word embeddings (Bio_ClinicalBERT: 28996).</param>
    public static PriorConfig Full(int vocabularySize = 28996) => new()
    {
        Text = BertConfig.BertBase with { VocabSize = vocabularySize },
        Decoder = BertConfig.BertBase with { VocabSize = vocabularySize, NumHiddenLayers = 8, AddPoolingLayer = false },
    };

    /// <summary>The <c>tiny</c> size for CPU tests and demos: grey 64 x 64 images, <see cref="ResNetConfig.Tiny"/> (128
    /// features, a 2 x 2 map), a 2-layer BERT of width 32, D = 32, 32 prototypes, 8 queries, a 2-layer sentence decoder.</summary>
    /// <param name="vocabularySize">Rows of the word embeddings.</param>
    /// <param name="volumes">Build the 3D variant (64^3 volumes, 2 x 2 x 2 map).</param>
    public static PriorConfig Tiny(int vocabularySize = 30522, bool volumes = false) => new()
    {
        Image = ResNetConfig.Tiny with { InChannels = 1, SpatialDims = volumes ? 3 : 2 },
        ImageSize = 64,
        Text = TinyBert(vocabularySize, 2) with { AddPoolingLayer = false },
        EmbeddingDim = 32,
        ImagePoolHeads = 2,
        SentencePoolHeads = 2,
        Prototypes = 32,
        Queries = 8,
        Decoder = TinyBert(vocabularySize, 2),
        MaxTextTokens = 64,
        MaxSentences = 16,
    };

    private static readonly string[] SentencePunctuation = [".", "!", "?"];

    /// <summary>The ids of the sentence-ending tokens (".", "!", "?") of <paramref name="tokenizer"/>, without its special tokens.</summary>
    /// <exception cref="ArgumentException">The tokenizer has no token for ".".</exception>
    public static IReadOnlyList<int> SentenceEnds(Text.TextTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        var special = tokenizer.Encode("", 8).Append(tokenizer.PaddingTokenId).ToHashSet();
        var ends = SentencePunctuation.SelectMany(p => tokenizer.Encode(p, 8)).Where(i => !special.Contains(i)).Distinct().ToArray();
        if (ends.Length == 0)
        {
            throw new ArgumentException("The tokenizer has no token for \".\", so reports cannot be split into sentences.", nameof(tokenizer));
        }

        return ends;
    }

    /// <inheritdoc />
    public override int? TokenizerVocabularySize(string tokenizer) => tokenizer == "text" ? Text?.VocabSize : null;

    /// <inheritdoc />
    public override void Validate()
    {
        if (Image is null || Text is null || Decoder is null)
        {
            throw new ArgumentException("the image, text and decoder sections are required.", Image is null ? "image" : Text is null ? "text" : "decoder");
        }

        try
        {
            Image.Validate();
        }
        catch (ArgumentException ex)
        {
            throw new ArgumentException(ex.Message, "image", ex);
        }

        if (Image.NumClasses is not null)
        {
            throw new ArgumentException("PRIOR's image encoder has no classifier (fc = Identity); num_classes must be null.", "image.num_classes");
        }

        Text.Validate("text.");
        Decoder.Validate("decoder.");
        ModelLimits.Check("image_size", ImageSize, 32, 4096);
        if (ImageSize % 32 != 0)
        {
            throw new ArgumentException($"expected image_size to be a multiple of 32 (the ResNet's stride), found {ImageSize}.", "image_size");
        }

        ModelLimits.Check("embedding_dim", EmbeddingDim, 2, ModelLimits.MaxWidth);
        if (Decoder.HiddenSize != EmbeddingDim)
        {
            throw new ArgumentException($"expected decoder.hidden_size to equal embedding_dim {EmbeddingDim} (the queries are D-wide), found {Decoder.HiddenSize}.", "decoder.hidden_size");
        }

        ModelLimits.Check("image_pool_heads", ImagePoolHeads, 1, ModelLimits.MaxHeads);
        ModelLimits.Check("sentence_pool_heads", SentencePoolHeads, 1, ModelLimits.MaxHeads);
        if (Image.FeatureWidth % ImagePoolHeads != 0 || EmbeddingDim % SentencePoolHeads != 0)
        {
            throw new ArgumentException($"expected the image width {Image.FeatureWidth} and embedding_dim {EmbeddingDim} to be multiples of their pooling heads ({ImagePoolHeads}, {SentencePoolHeads}).", "image_pool_heads");
        }

        if ((EmbeddingDim * 2) >> 5 < 1)
        {
            throw new ArgumentException($"expected embedding_dim >= 16 (the reconstruction decoder halves 2 x D five times), found {EmbeddingDim}.", "embedding_dim");
        }

        ModelLimits.Check("prototypes", Prototypes, 1, 1 << 20);
        if (!(PrototypeTemperature > 0) || !(Temperature > 0) || !(LocalTemperature > 0))
        {
            throw new ArgumentException($"expected positive temperatures, found prototype {PrototypeTemperature}, global {Temperature}, local {LocalTemperature}.", "temperature");
        }

        ModelLimits.Check("queries", Queries, 1, Decoder.MaxPositionEmbeddings, "decoder.max_position_embeddings");
        ModelLimits.Check("max_text_tokens", MaxTextTokens, 3, Text.MaxPositionEmbeddings, "text.max_position_embeddings");
        ModelLimits.Check("max_sentences", MaxSentences, 1, MaxTextTokens);
        if (SentenceEndTokenIds is null || SentenceEndTokenIds.Any(i => i < 0 || i >= Text.VocabSize))
        {
            throw new ArgumentException($"expected sentence_end_token_ids to be token ids below the vocabulary size {Text.VocabSize}.", "sentence_end_token_ids");
        }

        if (ImageReconstructionDropout is < 0 or >= 1 || double.IsNaN(ImageReconstructionDropout))
        {
            throw new ArgumentException($"expected a probability in [0, 1), found {ImageReconstructionDropout}.", "image_reconstruction_dropout");
        }
    }

    private static BertConfig TinyBert(int vocabularySize, int layers) => new()
    {
        VocabSize = vocabularySize,
        HiddenSize = 32,
        NumHiddenLayers = layers,
        NumAttentionHeads = 2,
        IntermediateSize = 64,
        MaxPositionEmbeddings = 64,
        HiddenDropoutProb = 0,
        AttentionProbsDropoutProb = 0,
        AddPoolingLayer = false,
    };
}
