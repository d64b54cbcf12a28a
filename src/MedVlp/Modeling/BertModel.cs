using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace MedVlp.Modeling;

// A BERT encoder laid out exactly as Hugging Face's BertModel: the field names below are the state-dict names
// (embeddings.word_embeddings.weight, encoder.layer.N.attention.self.query.weight, ...), so real BERT, CXR-BERT or
// PubMedBERT checkpoints load by name.

/// <summary>
/// A BERT text encoder with Hugging Face's parameter names and layout (post-norm, GELU, learned absolute positions).
/// <c>forward(ids, mask)</c> returns the final hidden states (B x T x H).
/// </summary>
public sealed class BertModel : Module<Tensor, Tensor, Tensor>
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
        embeddings = new BertEmbeddings(config, device);
        encoder = new BertEncoder(config, device);
        pooler = config.AddPoolingLayer ? new BertPooler(config, device) : null;
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
        // Additive mask (B x 1 x 1 x T): 0 where attending is allowed, a large negative number at padding.
        var additive = (1 - attentionMask.to(hidden.dtype)).unsqueeze(1).unsqueeze(1) * -1e9f;
        hidden = encoder.forward(hidden, additive);
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

    internal static void InitializeWeights(Module module)
    {
        using var noGrad = no_grad();
        foreach (var (_, m) in module.named_modules())
        {
            switch (m)
            {
                case Linear linear:
                    init.normal_(linear.weight, 0, 0.02);
                    if (linear.bias is not null)
                    {
                        init.zeros_(linear.bias);
                    }

                    break;
                case Embedding embedding:
                    init.normal_(embedding.weight, 0, 0.02);
                    break;
                case LayerNorm norm:
                    init.ones_(norm.weight);
                    init.zeros_(norm.bias);
                    break;
            }
        }
    }
}

internal sealed class BertEmbeddings : Module<Tensor, Tensor>
{
#pragma warning disable IDE1006, SA1300
    private readonly Embedding word_embeddings;
    private readonly Embedding position_embeddings;
    private readonly Embedding token_type_embeddings;
    private readonly LayerNorm LayerNorm;
    private readonly Dropout dropout;
#pragma warning restore IDE1006, SA1300

    public BertEmbeddings(BertConfig c, Device? device)
        : base(nameof(BertEmbeddings))
    {
        word_embeddings = Embedding(c.VocabSize, c.HiddenSize, device: device);
        position_embeddings = Embedding(c.MaxPositionEmbeddings, c.HiddenSize, device: device);
        token_type_embeddings = Embedding(c.TypeVocabSize, c.HiddenSize, device: device);
        LayerNorm = nn.LayerNorm(c.HiddenSize, c.LayerNormEps, device: device);
        dropout = Dropout(c.HiddenDropoutProb);
        RegisterComponents();
    }

    public override Tensor forward(Tensor inputIds)
    {
        using var scope = NewDisposeScope();
        var length = inputIds.shape[1];
        var positions = arange(length, dtype: ScalarType.Int64, device: inputIds.device).unsqueeze(0);
        var types = zeros_like(inputIds);
        var x = word_embeddings.forward(inputIds) + position_embeddings.forward(positions) + token_type_embeddings.forward(types);
        x = dropout.forward(LayerNorm.forward(x));
        return scope.MoveToOuter(x);
    }
}

internal sealed class BertEncoder : Module<Tensor, Tensor, Tensor>
{
#pragma warning disable IDE1006, SA1300
    private readonly ModuleList<BertLayer> layer;
#pragma warning restore IDE1006, SA1300

    public BertEncoder(BertConfig c, Device? device)
        : base(nameof(BertEncoder))
    {
        layer = new ModuleList<BertLayer>(Enumerable.Range(0, c.NumHiddenLayers).Select(_ => new BertLayer(c, device)).ToArray());
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, Tensor additiveMask)
    {
        using var scope = NewDisposeScope();
        var x = hidden;
        foreach (var l in layer)
        {
            x = l.forward(x, additiveMask);
        }

        return scope.MoveToOuter(x);
    }
}

internal sealed class BertLayer : Module<Tensor, Tensor, Tensor>
{
#pragma warning disable IDE1006, SA1300
    private readonly BertAttention attention;
    private readonly BertIntermediate intermediate;
    private readonly BertOutput output;
#pragma warning restore IDE1006, SA1300

    public BertLayer(BertConfig c, Device? device)
        : base(nameof(BertLayer))
    {
        attention = new BertAttention(c, device);
        intermediate = new BertIntermediate(c, device);
        output = new BertOutput(c, c.IntermediateSize, device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, Tensor additiveMask)
    {
        using var scope = NewDisposeScope();
        var attended = attention.forward(hidden, additiveMask);
        var result = output.forward(intermediate.forward(attended), attended);
        return scope.MoveToOuter(result);
    }
}

internal sealed class BertAttention : Module<Tensor, Tensor, Tensor>
{
#pragma warning disable IDE1006, SA1300
    private readonly BertSelfAttention self;
    private readonly BertOutput output;
#pragma warning restore IDE1006, SA1300

    public BertAttention(BertConfig c, Device? device)
        : base(nameof(BertAttention))
    {
        self = new BertSelfAttention(c, device);
        output = new BertOutput(c, c.HiddenSize, device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, Tensor additiveMask)
    {
        using var scope = NewDisposeScope();
        return scope.MoveToOuter(output.forward(self.forward(hidden, additiveMask), hidden));
    }
}

internal sealed class BertSelfAttention : Module<Tensor, Tensor, Tensor>
{
#pragma warning disable IDE1006, SA1300
    private readonly Linear query;
    private readonly Linear key;
    private readonly Linear value;
    private readonly double dropoutProbability;
#pragma warning restore IDE1006, SA1300
    private readonly int heads;

    public BertSelfAttention(BertConfig c, Device? device)
        : base(nameof(BertSelfAttention))
    {
        query = Linear(c.HiddenSize, c.HiddenSize, device: device);
        key = Linear(c.HiddenSize, c.HiddenSize, device: device);
        value = Linear(c.HiddenSize, c.HiddenSize, device: device);
        heads = c.NumAttentionHeads;
        dropoutProbability = c.AttentionProbsDropoutProb;
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, Tensor additiveMask)
    {
        using var scope = NewDisposeScope();
        var q = MultiHead.Split(query.forward(hidden), heads);
        var k = MultiHead.Split(key.forward(hidden), heads);
        var v = MultiHead.Split(value.forward(hidden), heads);
        var context = F.scaled_dot_product_attention(q, k, v, additiveMask, training ? dropoutProbability : 0);
        return scope.MoveToOuter(MultiHead.Merge(context));
    }
}

/// <summary>BertSelfOutput and BertOutput: dense, dropout, residual, LayerNorm (post-norm).</summary>
internal sealed class BertOutput : Module<Tensor, Tensor, Tensor>
{
#pragma warning disable IDE1006, SA1300
    private readonly Linear dense;
    private readonly LayerNorm LayerNorm;
    private readonly Dropout dropout;
#pragma warning restore IDE1006, SA1300

    public BertOutput(BertConfig c, int inputSize, Device? device)
        : base(nameof(BertOutput))
    {
        dense = Linear(inputSize, c.HiddenSize, device: device);
        LayerNorm = nn.LayerNorm(c.HiddenSize, c.LayerNormEps, device: device);
        dropout = Dropout(c.HiddenDropoutProb);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, Tensor residual)
    {
        using var scope = NewDisposeScope();
        return scope.MoveToOuter(LayerNorm.forward(dropout.forward(dense.forward(hidden)) + residual));
    }
}

internal sealed class BertIntermediate : Module<Tensor, Tensor>
{
#pragma warning disable IDE1006, SA1300
    private readonly Linear dense;
#pragma warning restore IDE1006, SA1300

    public BertIntermediate(BertConfig c, Device? device)
        : base(nameof(BertIntermediate))
    {
        dense = Linear(c.HiddenSize, c.IntermediateSize, device: device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden)
    {
        using var scope = NewDisposeScope();
        return scope.MoveToOuter(F.gelu(dense.forward(hidden)));
    }
}

internal sealed class BertPooler : Module<Tensor, Tensor>
{
#pragma warning disable IDE1006, SA1300
    private readonly Linear dense;
#pragma warning restore IDE1006, SA1300

    public BertPooler(BertConfig c, Device? device)
        : base(nameof(BertPooler))
    {
        dense = Linear(c.HiddenSize, c.HiddenSize, device: device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden)
    {
        using var scope = NewDisposeScope();
        return scope.MoveToOuter(tanh(dense.forward(hidden[.., 0])));
    }
}

/// <summary>Splits (B, T, H*D) into (B, H, T, D) and merges back.</summary>
internal static class MultiHead
{
    public static Tensor Split(Tensor x, int heads)
    {
        var b = x.shape[0];
        var t = x.shape[1];
        return x.view(b, t, heads, x.shape[2] / heads).transpose(1, 2);
    }

    public static Tensor Merge(Tensor x)
    {
        var b = x.shape[0];
        var t = x.shape[2];
        return x.transpose(1, 2).reshape(b, t, x.shape[1] * x.shape[3]);
    }
}
