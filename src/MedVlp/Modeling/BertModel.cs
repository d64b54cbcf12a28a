using MedVlp.Modeling.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace MedVlp.Modeling;

// A BERT encoder built from MedVlp.Modeling.Blocks and laid out exactly as Hugging Face's BertModel: the field names below are the state-dict names
// (embeddings.word_embeddings.weight, encoder.layer.N.attention.self.query.weight, ...), so real BERT, CXR-BERT or
// PubMedBERT checkpoints load by name.

/// <summary>
/// A BERT text encoder with Hugging Face's parameter names and layout (post-norm, GELU, learned absolute positions).
/// <c>forward(ids, mask)</c> returns the final hidden states (B x T x H).
/// </summary>
public sealed class BertModel : Module<Tensor, Tensor, Tensor>, INoWeightDecay
{
#pragma warning disable IDE1006, SA1300 // State-dict names follow Hugging Face.
    private readonly BertEmbeddings embeddings;
    private readonly BertEncoder encoder;
    private readonly BertPooler? pooler;
#pragma warning restore IDE1006, SA1300

    /// <summary>Creates the model with BERT's initialisation (normal, std 0.02) on <paramref name="device"/>.</summary>
    /// <param name="config">Sizes.</param>
    /// <param name="device">Where the parameters live; <c>meta</c> builds the structure without memory.</param>
    public BertModel(BertConfig config, Device? device = null)
        : base(nameof(BertModel))
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
        embeddings = new BertEmbeddings(
            new BertEmbeddingsOptions
            {
                VocabSize = config.VocabSize,
                HiddenSize = config.HiddenSize,
                MaxPositionEmbeddings = config.MaxPositionEmbeddings,
                TypeVocabSize = config.TypeVocabSize,
                LayerNormEps = config.LayerNormEps,
                HiddenDropout = config.HiddenDropoutProb,
            },
            device);
        var layer = LayerOptions(config);
        encoder = new BertEncoder(Enumerable.Repeat(layer, config.NumHiddenLayers), device);
        pooler = config.AddPoolingLayer ? new BertPooler(config.HiddenSize, device) : null;
        RegisterComponents();
        if (device is null || device.type != DeviceType.META)
        {
            InitializeWeights(this);
        }
    }

    /// <summary>The configuration.</summary>
    public BertConfig Config { get; }

    /// <summary>Final hidden states (B x T x H) for token ids (B x T, int64) and an attention mask (B x T, 1 = token, 0 = padding).</summary>
    public override Tensor forward(Tensor inputIds, Tensor attentionMask)
    {
        using var scope = NewDisposeScope();
        var hidden = embeddings.forward(inputIds);
        hidden = encoder.forward(hidden, AttentionMask.Padding(attentionMask));
        return scope.MoveToOuter(hidden);
    }

    /// <summary>BERT's pooled output: tanh(dense(h[:, 0])). Throws if the model was built without a pooler.</summary>
    public Tensor Pool(Tensor hiddenStates)
    {
        if (pooler is null)
        {
            throw new InvalidOperationException("This BERT model was configured without a pooling layer (add_pooling_layer = false).");
        }

        return pooler.forward(hiddenStates);
    }

    /// <inheritdoc/>
    public IEnumerable<string> NoWeightDecayParameterNames() => NoWeightDecay.Compose(this);

    /// <summary>The options of every layer of a BERT with <paramref name="config"/>.</summary>
    public static BertLayerOptions LayerOptions(BertConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return new BertLayerOptions
        {
            HiddenSize = config.HiddenSize,
            Heads = config.NumAttentionHeads,
            IntermediateSize = config.IntermediateSize,
            LayerNormEps = config.LayerNormEps,
            HiddenDropout = config.HiddenDropoutProb,
            AttentionDropout = config.AttentionProbsDropoutProb,
        };
    }

    internal static void InitializeWeights(Module module, double std = 0.02)
    {
        using var noGrad = no_grad();
        foreach (var (_, m) in module.named_modules())
        {
            switch (m)
            {
                case Linear linear:
                    init.normal_(linear.weight, 0, std);
                    if (linear.bias is not null)
                    {
                        init.zeros_(linear.bias);
                    }

                    break;
                case Embedding embedding:
                    init.normal_(embedding.weight, 0, std);
                    break;
                case LayerNorm norm:
                    init.ones_(norm.weight);
                    init.zeros_(norm.bias);
                    break;
            }
        }
    }
}
