using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace MedVlp.Modeling.Blocks;

/// <summary>The feed-forward kind of a <see cref="TransformerLayer"/>.</summary>
public enum FeedForwardKind
{
    /// <summary><see cref="Mlp"/> with exact GELU.</summary>
    Gelu,

    /// <summary><see cref="Mlp"/> with tanh-approximated GELU.</summary>
    GeluTanh,

    /// <summary><see cref="SwiGluMlp"/>.</summary>
    SwiGlu,

    /// <summary><see cref="SwiGluMlp"/> with a LayerNorm on its hidden units (EVA-02).</summary>
    SwiGluNormed,
}

/// <summary>Sizes and options of a <see cref="TransformerLayer"/>.</summary>
public sealed record TransformerLayerOptions
{
    /// <summary>Token width.</summary>
    public required int Width { get; init; }

    /// <summary>Attention heads.</summary>
    public required int Heads { get; init; }

    /// <summary>Hidden width of the feed-forward block.</summary>
    public required int MlpHidden { get; init; }

    /// <summary>The feed-forward block.</summary>
    public FeedForwardKind FeedForward { get; init; } = FeedForwardKind.Gelu;

    /// <summary>The bias layout of the attention's <c>qkv</c>.</summary>
    public QkvBias QkvBias { get; init; } = QkvBias.Fused;

    /// <summary>Pre-norm (<c>x + f(norm(x))</c>, ViT) when true; post-norm (<c>norm(x + f(x))</c>, original Transformer/BERT) when false.</summary>
    public bool NormFirst { get; init; } = true;

    /// <summary>LayerScale initial value (<c>ls1.gamma</c>, <c>ls2.gamma</c>); none when null.</summary>
    public double? LayerScaleInit { get; init; }

    /// <summary>Stochastic depth probability of both residual branches.</summary>
    public double DropPath { get; init; }

    /// <summary>LayerNorm epsilon.</summary>
    public double LayerNormEps { get; init; } = 1e-6;

    /// <summary>Dropout on attention probabilities.</summary>
    public double AttentionDropout { get; init; }

    /// <summary>Dropout after the attention projection and the MLP.</summary>
    public double Dropout { get; init; }
}

/// <summary>
/// A transformer encoder layer with timm's names: <c>norm1</c>, <c>attn</c> (<see cref="Attention"/>), <c>ls1</c>,
/// <c>norm2</c>, <c>mlp</c> (<see cref="Mlp"/> or <see cref="SwiGluMlp"/>), <c>ls2</c>; pre-norm or post-norm, with
/// optional LayerScale, drop-path, mask, rotary embedding and key/value cache.
/// </summary>
public sealed class TransformerLayer : Module<Tensor, Tensor>, INoWeightDecay
{
#pragma warning disable IDE1006, SA1300 // State-dict names follow timm.
    private readonly LayerNorm norm1;
    private readonly Attention attn;
    private readonly LayerScale? ls1;
    private readonly DropPath drop_path;
    private readonly LayerNorm norm2;
    private readonly Module<Tensor, Tensor> mlp;
    private readonly LayerScale? ls2;
#pragma warning restore IDE1006, SA1300

    /// <summary>Creates the layer.</summary>
    public TransformerLayer(TransformerLayerOptions options, Device? device = null)
        : base(nameof(TransformerLayer))
    {
        ArgumentNullException.ThrowIfNull(options);
        Options = options;
        norm1 = LayerNorm(options.Width, options.LayerNormEps, device: device);
        attn = new Attention(
            new AttentionOptions
            {
                Width = options.Width,
                Heads = options.Heads,
                QkvBias = options.QkvBias,
                AttentionDropout = options.AttentionDropout,
                ProjectionDropout = options.Dropout,
            },
            device);
        ls1 = options.LayerScaleInit is { } init1 ? new LayerScale(options.Width, init1, device) : null;
        drop_path = new DropPath(options.DropPath);
        norm2 = LayerNorm(options.Width, options.LayerNormEps, device: device);
        mlp = options.FeedForward switch
        {
            FeedForwardKind.Gelu => new Mlp(options.Width, options.MlpHidden, MlpActivation.Gelu, options.Dropout, device),
            FeedForwardKind.GeluTanh => new Mlp(options.Width, options.MlpHidden, MlpActivation.GeluTanh, options.Dropout, device),
            FeedForwardKind.SwiGlu => new SwiGluMlp(options.Width, options.MlpHidden, false, options.LayerNormEps, device),
            FeedForwardKind.SwiGluNormed => new SwiGluMlp(options.Width, options.MlpHidden, true, options.LayerNormEps, device),
            _ => throw new ArgumentOutOfRangeException(nameof(options), options.FeedForward, "Unknown feed-forward kind."),
        };
        ls2 = options.LayerScaleInit is { } init2 ? new LayerScale(options.Width, init2, device) : null;
        RegisterComponents();
    }

    /// <summary>The options.</summary>
    public TransformerLayerOptions Options { get; }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x) => forward(x, null);

    /// <summary>The layer over (B x T x width) tokens, with an optional attention mask, rotary tables and cache (see <see cref="Attention.forward(Tensor, Tensor?, RotaryTables?, AttentionCache?)"/>).</summary>
    public Tensor forward(Tensor x, Tensor? mask, RotaryTables? rotary = null, AttentionCache? cache = null)
    {
        ArgumentNullException.ThrowIfNull(x);
        using var scope = NewDisposeScope();
        if (Options.NormFirst)
        {
            x = x + drop_path.forward(Scale(ls1, attn.forward(norm1.forward(x), mask, rotary, cache)));
            x = x + drop_path.forward(Scale(ls2, mlp.forward(norm2.forward(x))));
        }
        else
        {
            x = norm1.forward(x + drop_path.forward(Scale(ls1, attn.forward(x, mask, rotary, cache))));
            x = norm2.forward(x + drop_path.forward(Scale(ls2, mlp.forward(x))));
        }

        return scope.MoveToOuter(x);
    }

    /// <inheritdoc/>
    public IEnumerable<string> NoWeightDecayParameterNames() => NoWeightDecay.Compose(this);

    private static Tensor Scale(LayerScale? scale, Tensor x) => scale is null ? x : scale.forward(x);
}
