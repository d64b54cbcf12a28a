using System.Text.Json.Serialization;
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
/// An extra intensity window of the image input: Hounsfield units in [<see cref="MinHu"/>, <see cref="MaxHu"/>] mapped
/// to [-1, 1] and clamped (as a radiologist's lung window), fed to the patch embedding as one more channel.
/// </summary>
public sealed record HuWindow
{
    /// <summary>Lower edge of the window in HU (-1 after mapping).</summary>
    public double MinHu { get; init; }

    /// <summary>Upper edge of the window in HU (+1 after mapping).</summary>
    public double MaxHu { get; init; }

    /// <summary>The lung window MedVlp's <c>tiny</c> COLIPRI uses: [-1000, -500] HU.</summary>
    public static HuWindow Lung { get; } = new() { MinHu = -1000, MaxHu = -500 };
}

/// <summary>
/// The configuration of a COLIPRI model. Published (model card, microsoft/colipri): Primus 3D ViT, patch 8, input
/// 192^3 -> 24^3 tokens, a Conv3d <c>projector</c> to 768, attention pooling to a 768-d embedding, a BERT-layout text
/// encoder (CXR-BERT), zero-shot over positive / negative prompt pairs. Not published, so MedVlp's documented defaults:
/// depth 16 x width 864 (Primus-M; the card leaves 16 x 864 vs 24 x 768 open), no absolute position embedding, the
/// report decoder's size, the masking ratio and target of masked image modelling, the contrastive variant (CLIP) and the
/// opposite-sentence loss's form (<see cref="MedVlp.Losses.OppositeSentenceLoss"/>), and the objective weights (1 each).
/// </summary>
public sealed record ColipriConfig : ArchitectureConfig
{
    /// <summary>The registry name of this architecture.</summary>
    public const string ArchitectureName = "colipri";

    /// <inheritdoc />
    public override string Architecture => ArchitectureName;

    /// <summary>The image encoder (Primus-M by default).</summary>
    public PrimusEncoderOptions Encoder { get; init; } = new();

    /// <summary>The text encoder (BERT-base layout, as CXR-BERT).</summary>
    public BertConfig Text { get; init; } = new();

    /// <summary>
    /// How the text encoder's states become one report embedding: <see cref="TextPooling.Cls"/> (the released model, a
    /// CXR-BERT) or <see cref="TextPooling.Mean"/> over the real tokens (the <c>tiny</c> size: a small BERT trained from
    /// scratch gives nearly the same [CLS] state to every text for hundreds of steps, which stalls both text-dependent
    /// objectives, as clip3d's tiny size found too).
    /// </summary>
    public TextPooling TextPooling { get; init; } = TextPooling.Cls;

    /// <summary>Width of the shared embedding space and of the projected patch tokens (768).</summary>
    public int EmbeddingDim { get; init; } = 768;

    /// <summary>Heads of the attention pooling (12).</summary>
    public int PoolHeads { get; init; } = 12;

    /// <summary>
    /// How the projected patch tokens become the image embedding: <see cref="ImagePooling.Attention"/> (the released
    /// model, <c>pooler</c>, a learned query with <see cref="PoolHeads"/> heads) or <see cref="ImagePooling.Max"/> (a
    /// MedVlp option of the <c>tiny</c> size: no <c>pooler</c> weights; the channel-wise maximum over the tokens, so a
    /// local finding in any patch moves the embedding. On the synthetic chest set, trained on the labels through the same
    /// tower for 300 steps, macro AUROC was 0.84 with it against 0.61 with attention pooling).
    /// </summary>
    public ImagePooling ImagePooling { get; init; } = ImagePooling.Attention;

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

    /// <summary>
    /// Token ids the report decoder reads and writes (its own embedding and output rows), or null for the text encoder's
    /// whole vocabulary (the default). A MedVlp option for small models: a decoder over the few hundred tokens of a report
    /// corpus costs a fraction of one over 30,522 WordPiece tokens. Ids outside the list map to its first entry (list the
    /// unknown token first); generation only emits listed ids.
    /// </summary>
    public IReadOnlyList<int>? ReportVocabulary { get; init; }

    /// <summary>
    /// Whether a recipe restricts <see cref="ReportVocabulary"/> to the training reports' tokens before building the
    /// model (<c>RecipeArchitecture.AdaptToReports</c>; default false, true for the <c>tiny</c> size). A MedVlp option.
    /// </summary>
    public bool CorpusReportVocabulary { get; init; }

    /// <summary>
    /// Extra intensity windows of the image input, each one more channel of the patch embedding (null or empty: none, the
    /// released model and the <c>full</c> size). A MedVlp option of the <c>tiny</c> size (a lung window, [-1000, -500] HU):
    /// the model's input stays one channel in the <c>colipri</c> preset's scale (HU / 1000 clamped to [-1, 1]); each
    /// window re-maps it, clamped, so density differences inside the lungs (emphysema, fluid, consolidation) change the
    /// direction of a patch's embedding and not only its scale, which the pre-norm blocks remove. Needs
    /// <c>encoder.in_channels</c> 1; the backbone then has 1 + windows input channels and masked image modelling
    /// reconstructs every channel.
    /// </summary>
    public IReadOnlyList<HuWindow>? InputWindows { get; init; }

    /// <summary>Input channels of the backbone's patch embedding: the image channels plus one per <see cref="InputWindows"/> entry.</summary>
    [JsonIgnore]
    public int BackboneChannels => Encoder.InChannels + (InputWindows?.Count ?? 0);

    /// <summary>Rows of the report decoder's embedding and output layer.</summary>
    [JsonIgnore]
    public int ReportVocabularySize => ReportVocabulary?.Count ?? Text.VocabSize;

    /// <summary>
    /// A <see cref="ReportVocabulary"/> for a report corpus: <paramref name="unknownTokenId"/> first, then the tokenizer's
    /// special tokens (padding, start, end) and every id the corpus's reports tokenize to, in ascending order.
    /// </summary>
    /// <param name="tokenizer">The report tokenizer.</param>
    /// <param name="reports">The training reports.</param>
    /// <param name="unknownTokenId">The id that tokens outside the list map to (WordPiece: <c>[UNK]</c>).</param>
    public static IReadOnlyList<int> CorpusVocabulary(MedVlp.Text.TextTokenizer tokenizer, IEnumerable<string> reports, int unknownTokenId)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(reports);
        var ids = new SortedSet<int> { tokenizer.PaddingTokenId };
        if (tokenizer.BeginningOfSequenceTokenId is { } bos)
        {
            ids.Add(bos);
        }

        if (tokenizer.EndOfSequenceTokenId is { } eos)
        {
            ids.Add(eos);
        }

        foreach (var report in reports)
        {
            ids.UnionWith(tokenizer.Encode(report, int.MaxValue));
        }

        ids.Remove(unknownTokenId);
        return [unknownTokenId, .. ids];
    }

    /// <summary>The paper's size (Primus-M, BERT-base, 768-d space) over a vocabulary.</summary>
    /// <param name="vocabularySize">Rows of the word embedding (bert-base-uncased and CXR-BERT: 30522).</param>
    public static ColipriConfig Full(int vocabularySize = 30522) => new() { Text = new BertConfig { VocabSize = vocabularySize } };

    /// <summary>
    /// A CPU-sized model for tests and demos: 64^3 input in 16^3 patches (64 tokens) cut after a convolutional stem of two
    /// stride-2 stages (16, 32 channels: <see cref="PrimusEncoderOptions.StemChannels"/>), each convolution followed by a
    /// batch norm (<see cref="PrimusEncoderOptions.StemBatchNorm"/>: held-out zero-shot macro AUROC 0.822 -> 0.839 on seed 42
    /// of the demo, consolidation 0.69 -> 0.84), width 96, 2 blocks of 2 heads, with
    /// a lung-window input channel (<see cref="InputWindows"/>: [-1000, -500] HU next to the preset's [-1000, 1000]); BERT
    /// 2 x 64 with mean pooling; a 2-layer decoder of width 64; max pooling of the image tokens (<see cref="ImagePooling"/>)
    /// and the opposite-sentence term weighted 4 (<see cref="OppositeSentenceWeight"/>: on the synthetic chest set, 960
    /// training volumes, 300 steps, seed 42, held-out zero-shot macro AUROC 0.725 with weight 1 and 0.780 with 4). (Patch 8 with 512 tokens took twice as long per step side by side
    /// and, on the synthetic chest set, a linear probe of its embedding after 50 steps was worse: 0.58 vs 0.69 macro AUROC.)
    /// </summary>
    /// <param name="vocabularySize">Rows of the word embedding (bert-base-uncased: 30522).</param>
    public static ColipriConfig Tiny(int vocabularySize = 30522) => new()
    {
        Encoder = new PrimusEncoderOptions { InputSize = 64, PatchSize = 16, Width = 96, Depth = 2, Heads = 2, LayerScaleInit = 0.1, StemChannels = [16, 32], StemBatchNorm = true },
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
        TextPooling = TextPooling.Mean,
        EmbeddingDim = 64,
        PoolHeads = 4,
        ImagePooling = ImagePooling.Max,
        OppositeSentenceWeight = 4,
        MaxTextTokens = 128,
        DecoderLayers = 2,
        DecoderWidth = 64,
        DecoderHeads = 4,
        CorpusReportVocabulary = true,
        InputWindows = [HuWindow.Lung],
    };

    /// <inheritdoc />
    public override int? TokenizerVocabularySize(string tokenizer) => tokenizer == "text" ? Text?.VocabSize : null;

    /// <inheritdoc />
    public override long? EstimateParameters()
    {
        checked
        {
            long w = Encoder.Width, c = BackboneChannels, p = Encoder.PatchSize, h = Encoder.MlpHidden, e = EmbeddingDim;
            var block = (4 * w * w) + (3 * w * h) + (12 * w) + (4 * h);
            long stem = 0, stemOut = c, pe = Encoder.EmbeddingPatchSize;
            foreach (var channels in Encoder.StemChannels ?? [])
            {
                stem += (stemOut * channels * 27) + channels + (Encoder.StemBatchNorm ? 2 * channels : 0);
                stemOut = channels;
            }

            var vision = stem + (w * stemOut * pe * pe * pe) + w + (Encoder.Depth * block) + (2 * w) + w;
            long d = Text.HiddenSize, i = Text.IntermediateSize;
            var text = (((long)Text.VocabSize + Text.MaxPositionEmbeddings + Text.TypeVocabSize) * d) + (2 * d)
                + (Text.NumHiddenLayers * ((4 * ((d * d) + d)) + (2 * d) + (i * d) + i + (d * i) + d + (2 * d)))
                + (Text.AddPoolingLayer ? (d * d) + d : 0);
            long v = ReportVocabularySize, dw = DecoderWidth;
            var decoder = ((v + MaxTextTokens + 2) * dw) + (2 * dw)
                + (DecoderLayers * ((14 * dw * dw) + (2 * e * dw) + (19 * dw)))
                + (dw * v) + v;
            var pool = ImagePooling == ImagePooling.Attention ? (4 * e * e) + (5 * e) : 0;
            var heads = (w * e) + e + pool + (d * e) + 2 + (w * c * p * p * p) + (c * p * p * p);
            return vision + text + decoder + heads;
        }
    }

    /// <inheritdoc />
    public override void Validate()
    {
        if (Encoder is null)
        {
            throw new ArgumentException("the image encoder section is missing.", "encoder");
        }

        if (Text is null)
        {
            throw new ArgumentException("the text encoder section is missing.", "text");
        }

        try
        {
            Encoder.Validate();
        }
        catch (ArgumentException ex)
        {
            throw new ArgumentException(ex.Message, "encoder", ex);
        }

        ModelLimits.Check("encoder.width", Encoder.Width, 1, ModelLimits.MaxWidth);
        ModelLimits.Check("encoder.depth", Encoder.Depth, 0, ModelLimits.MaxLayers);
        ModelLimits.Check("encoder.heads", Encoder.Heads, 1, ModelLimits.MaxHeads);
        ModelLimits.Check("encoder.input_size", Encoder.InputSize, 1, ModelLimits.MaxInputSize);
        ModelLimits.Check("encoder.in_channels", Encoder.InChannels, 1, ModelLimits.MaxChannels);
        ModelLimits.Check("encoder.mlp_ratio", Encoder.MlpRatio, 1e-3, ModelLimits.MaxMlpRatio);
        foreach (var channels in Encoder.StemChannels ?? [])
        {
            ModelLimits.Check("encoder.stem_channels", channels, 1, ModelLimits.MaxWidth);
        }

        Text.Validate("text.");
        if (InputWindows is { Count: > 0 } windows)
        {
            ModelLimits.Check("input_windows.length", windows.Count, 1, ModelLimits.MaxChannels);
            if (Encoder.InChannels != 1)
            {
                throw new ArgumentException($"input windows re-map a one-channel CT input, found encoder.in_channels {Encoder.InChannels}.", "input_windows");
            }

            foreach (var window in windows)
            {
                if (window is null || !double.IsFinite(window.MinHu) || !double.IsFinite(window.MaxHu) || !(window.MaxHu > window.MinHu))
                {
                    throw new ArgumentException($"expected each input window to have finite min_hu < max_hu, found {window}.", "input_windows");
                }
            }
        }

        ModelLimits.Check("embedding_dim", EmbeddingDim, 1, ModelLimits.MaxWidth);
        ModelLimits.Check("pool_heads", PoolHeads, 1, ModelLimits.MaxHeads);
        if (!Enum.IsDefined(ImagePooling))
        {
            throw new ArgumentException($"expected image_pooling attention or max, found {(int)ImagePooling}.", "image_pooling");
        }

        if (!Enum.IsDefined(TextPooling))
        {
            throw new ArgumentException($"expected text_pooling cls or mean, found {(int)TextPooling}.", "text_pooling");
        }

        ModelLimits.Check("max_text_tokens", MaxTextTokens, 4, Text.MaxPositionEmbeddings, "text.max_position_embeddings");
        ModelLimits.Check("decoder_layers", DecoderLayers, 1, ModelLimits.MaxLayers);
        ModelLimits.Check("decoder_width", DecoderWidth, 1, ModelLimits.MaxWidth);
        ModelLimits.Check("decoder_heads", DecoderHeads, 1, ModelLimits.MaxHeads);
        ModelLimits.Check("initial_temperature", InitialTemperature, 1e-6, 1e6);
        ModelLimits.Check("mask_ratio", MaskRatio, 1e-6, 1 - 1e-6);
        foreach (var (name, weight) in new[] { ("contrastive_weight", ContrastiveWeight), ("report_weight", ReportWeight), ("masked_image_weight", MaskedImageWeight), ("opposite_sentence_weight", OppositeSentenceWeight) })
        {
            ModelLimits.Check(name, weight, 0, 1e6);
        }

        if (EmbeddingDim % PoolHeads != 0)
        {
            throw new ArgumentException($"expected embedding_dim {EmbeddingDim} to be a multiple of pool_heads, found {PoolHeads}.", "pool_heads");
        }

        if (DecoderWidth % DecoderHeads != 0)
        {
            throw new ArgumentException($"expected decoder_width {DecoderWidth} to be a multiple of decoder_heads, found {DecoderHeads}.", "decoder_heads");
        }

        if (ReportVocabulary is { } vocabulary)
        {
            ModelLimits.Check("report_vocabulary.length", vocabulary.Count, 2, ModelLimits.MaxVocabulary);
            var seen = new HashSet<int>();
            foreach (var id in vocabulary)
            {
                if (id < 0 || id >= Text.VocabSize || !seen.Add(id))
                {
                    throw new ArgumentException($"expected distinct token ids in [0, {Text.VocabSize}) (text.vocab_size), found {id}.", "report_vocabulary");
                }
            }
        }
    }
}
