using MedVlp.Modeling.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace MedVlp.Modeling.Backbones;

/// <summary>Sizes of a <see cref="QFormer"/> (LAVIS <c>init_Qformer</c> on bert-base-uncased).</summary>
public sealed record QFormerConfig
{
    /// <summary>BLIP-2 / MedBLIP: bert-base (12 layers, 768, 12 heads, FFN 3072), 32 queries, cross-attention every 2nd layer to 1408-wide EVA ViT-g tokens.</summary>
    public static QFormerConfig Blip2 { get; } = new();

    /// <summary>Vocabulary size of the text embeddings.</summary>
    public int VocabSize { get; init; } = 30522;

    /// <summary>Hidden width.</summary>
    public int HiddenSize { get; init; } = 768;

    /// <summary>Layers.</summary>
    public int NumHiddenLayers { get; init; } = 12;

    /// <summary>Attention heads.</summary>
    public int NumAttentionHeads { get; init; } = 12;

    /// <summary>Feed-forward hidden size.</summary>
    public int IntermediateSize { get; init; } = 3072;

    /// <summary>Learned text positions.</summary>
    public int MaxPositionEmbeddings { get; init; } = 512;

    /// <summary>Width of the image tokens the queries cross-attend to.</summary>
    public int EncoderWidth { get; init; } = 1408;

    /// <summary>Cross-attention in layers 0, f, 2f, ... (LAVIS <c>cross_attention_freq</c>).</summary>
    public int CrossAttentionFrequency { get; init; } = 2;

    /// <summary>Learned query tokens.</summary>
    public int QueryTokens { get; init; } = 32;

    /// <summary>LayerNorm epsilon.</summary>
    public double LayerNormEps { get; init; } = 1e-12;

    /// <summary>Dropout on hidden states.</summary>
    public double HiddenDropoutProb { get; init; } = 0.1;

    /// <summary>Dropout on attention probabilities.</summary>
    public double AttentionProbsDropoutProb { get; init; } = 0.1;

    /// <summary>Standard deviation of the normal initialisation of weights, embeddings and query tokens (Hugging Face
    /// <c>initializer_range</c>; BERT and BLIP-2: 0.02). Only fresh weights use it; loaded weights replace them.</summary>
    public double InitializerRange { get; init; } = 0.02;

    internal void Validate()
    {
        if (VocabSize <= 0 || HiddenSize <= 0 || NumHiddenLayers < 0 || NumAttentionHeads <= 0 || HiddenSize % NumAttentionHeads != 0 ||
            IntermediateSize <= 0 || MaxPositionEmbeddings <= 0 || EncoderWidth <= 0 || CrossAttentionFrequency <= 0 || QueryTokens <= 0 ||
            LayerNormEps <= 0 || HiddenDropoutProb is < 0 or >= 1 || AttentionProbsDropoutProb is < 0 or >= 1 || !(InitializerRange is > 0 and <= 1))
        {
            throw new ArgumentException($"Invalid Q-Former configuration {this}.");
        }
    }
}

/// <summary>
/// The BLIP-2 Q-Former as LAVIS builds it (MedBLIP's MedQFormer): <c>bert.embeddings</c> (word and position
/// embeddings, no token types), <c>bert.encoder.layer.{i}</c> (<see cref="BertLayer"/> with <c>crossattention</c> every
/// <see cref="QFormerConfig.CrossAttentionFrequency"/>-th layer and <c>intermediate_query</c> / <c>output_query</c> in
/// every layer) and <c>query_tokens</c> (1 x queries x hidden, normal std <c>initializer_range</c>, 0.02). <c>forward(imageTokens)</c> returns the
/// query outputs (B x queries x hidden).
/// </summary>
public sealed class QFormer : Module<Tensor, Tensor>, INoWeightDecay
{
#pragma warning disable IDE1006, SA1300 // State-dict names follow LAVIS.
    private readonly QFormerBert bert;
    private readonly Parameter query_tokens;
#pragma warning restore IDE1006, SA1300

    /// <summary>Creates the Q-Former (BERT initialisation: normal std <see cref="QFormerConfig.InitializerRange"/>, 0.02 by default, unless on <c>meta</c>).</summary>
    public QFormer(QFormerConfig config, Device? device = null)
        : base(nameof(QFormer))
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
        bert = new QFormerBert(config, device);
        query_tokens = new Parameter(zeros([1, config.QueryTokens, config.HiddenSize], device: device));
        RegisterComponents();
        if (device is null || device.type != DeviceType.META)
        {
            BertModel.InitializeWeights(this, config.InitializerRange);
            using var noGrad = no_grad();
            init.normal_(query_tokens, 0, config.InitializerRange);
        }
    }

    /// <summary>The configuration.</summary>
    public QFormerConfig Config { get; }

    /// <summary>Query outputs (B x queries x hidden) for image tokens (B x S x encoderWidth), all image tokens valid.</summary>
    public override Tensor forward(Tensor imageTokens) => forward(imageTokens, null);

    /// <summary>Query outputs (B x queries x hidden) for image tokens and an optional (B x S) image token mask.</summary>
    public Tensor forward(Tensor imageTokens, Tensor? imageMask)
    {
        ArgumentNullException.ThrowIfNull(imageTokens);
        using var scope = NewDisposeScope();
        var queries = query_tokens.expand(imageTokens.shape[0], -1, -1);
        var hidden = bert.Embeddings.forward(null, null, queryEmbeds: queries);
        var crossMask = imageMask is null ? null : AttentionMask.Padding(imageMask);
        return scope.MoveToOuter(bert.Encoder.forward(hidden, null, imageTokens, crossMask, Config.QueryTokens));
    }

    /// <summary>Text states (B x T x hidden) of token ids through the same layers, without queries or cross-attention (BLIP-2's text branch).</summary>
    public Tensor EncodeText(Tensor inputIds, Tensor attentionMask)
    {
        ArgumentNullException.ThrowIfNull(inputIds);
        ArgumentNullException.ThrowIfNull(attentionMask);
        using var scope = NewDisposeScope();
        var hidden = bert.Embeddings.forward(inputIds, null);
        return scope.MoveToOuter(bert.Encoder.forward(hidden, AttentionMask.Padding(attentionMask)));
    }

    /// <inheritdoc/>
    public IEnumerable<string> NoWeightDecayParameterNames() => NoWeightDecay.Compose(this, "query_tokens");

    /// <summary>The Q-Former's BERT (<c>embeddings</c>, <c>encoder</c>; no pooler).</summary>
    private sealed class QFormerBert : Module
    {
#pragma warning disable IDE1006, SA1300 // State-dict names follow LAVIS.
        private readonly BertEmbeddings embeddings;
        private readonly BertEncoder encoder;
#pragma warning restore IDE1006, SA1300

        public QFormerBert(QFormerConfig c, Device? device)
            : base(nameof(QFormerBert))
        {
            embeddings = new BertEmbeddings(
                new BertEmbeddingsOptions
                {
                    VocabSize = c.VocabSize,
                    HiddenSize = c.HiddenSize,
                    MaxPositionEmbeddings = c.MaxPositionEmbeddings,
                    TypeVocabSize = 0,
                    LayerNormEps = c.LayerNormEps,
                    HiddenDropout = c.HiddenDropoutProb,
                },
                device);
            encoder = new BertEncoder(
                Enumerable.Range(0, c.NumHiddenLayers).Select(i => new BertLayerOptions
                {
                    HiddenSize = c.HiddenSize,
                    Heads = c.NumAttentionHeads,
                    IntermediateSize = c.IntermediateSize,
                    LayerNormEps = c.LayerNormEps,
                    HiddenDropout = c.HiddenDropoutProb,
                    AttentionDropout = c.AttentionProbsDropoutProb,
                    CrossAttentionWidth = i % c.CrossAttentionFrequency == 0 ? c.EncoderWidth : null,
                    QueryFeedForward = true,
                }),
                device);
            RegisterComponents();
        }

        public BertEmbeddings Embeddings => embeddings;

        public BertEncoder Encoder => encoder;
    }
}
