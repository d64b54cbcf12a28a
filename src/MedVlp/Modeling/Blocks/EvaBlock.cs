using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace MedVlp.Modeling.Blocks;

/// <summary>Options of <see cref="EvaBlock"/>.</summary>
public sealed record EvaBlockOptions
{
    /// <summary>Token width.</summary>
    public required int Width { get; init; }

    /// <summary>Attention heads.</summary>
    public required int Heads { get; init; }

    /// <summary>SwiGLU hidden size (timm: <c>int(width * mlp_ratio)</c>, Primus: <c>mlp_ratio = 8/3</c>).</summary>
    public required int MlpHidden { get; init; }

    /// <summary>LayerNorm inside the attention before its projection (<c>scale_attn_inner</c>; Primus: true).</summary>
    public bool AttentionInnerNorm { get; init; } = true;

    /// <summary>LayerNorm of the SwiGLU hidden state (<c>scale_mlp</c>; Primus: true).</summary>
    public bool MlpInnerNorm { get; init; } = true;

    /// <summary>Initial value of the per-channel residual scales <c>gamma_1</c>, <c>gamma_2</c>; null for none (Primus: 0.1).</summary>
    public double? LayerScaleInit { get; init; } = 0.1;

    /// <summary>LayerNorm epsilon (torch's default 1e-5, which Primus uses).</summary>
    public double LayerNormEps { get; init; } = 1e-5;

    /// <summary>Drop-path probability (training only).</summary>
    public double DropPath { get; init; }
}

/// <summary>
/// timm's pre-norm <c>EvaBlock</c> with SwiGLU, as the EVA-02 and Primus 3D ViTs build it: <c>norm1</c>, <c>attn</c>
/// (<see cref="EvaAttention"/>), <c>gamma_1</c>, <c>norm2</c>, <c>mlp</c> (<see cref="SwiGluMlp"/>: <c>fc1_g</c>,
/// <c>fc1_x</c>, <c>norm</c>, <c>fc2</c>), <c>gamma_2</c>: <c>x + g1 * attn(norm1(x)); x + g2 * mlp(norm2(x))</c>.
/// </summary>
public sealed class EvaBlock : Module<Tensor, Tensor>, INoWeightDecay
{
#pragma warning disable IDE1006, SA1300 // State-dict names follow timm.
    private readonly LayerNorm norm1;
    private readonly EvaAttention attn;
    private readonly Parameter? gamma_1;
    private readonly DropPath drop_path;
    private readonly LayerNorm norm2;
    private readonly SwiGluMlp mlp;
    private readonly Parameter? gamma_2;
#pragma warning restore IDE1006, SA1300

    /// <summary>Creates the block.</summary>
    public EvaBlock(EvaBlockOptions options, Device? device = null)
        : base(nameof(EvaBlock))
    {
        ArgumentNullException.ThrowIfNull(options);
        Options = options;
        norm1 = LayerNorm(options.Width, options.LayerNormEps, device: device);
        attn = new EvaAttention(options.Width, options.Heads, options.AttentionInnerNorm, options.LayerNormEps, device);
        norm2 = LayerNorm(options.Width, options.LayerNormEps, device: device);
        mlp = new SwiGluMlp(options.Width, options.MlpHidden, options.MlpInnerNorm, options.LayerNormEps, device);
        drop_path = new DropPath(options.DropPath);
        if (options.LayerScaleInit is { } init)
        {
            gamma_1 = new Parameter(full(options.Width, init, device: device));
            gamma_2 = new Parameter(full(options.Width, init, device: device));
        }

        RegisterComponents();
    }

    /// <summary>The options.</summary>
    public EvaBlockOptions Options { get; }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x) => forward(x, null);

    /// <summary>The block over (B x T x width) tokens with an optional attention mask and rotary tables.</summary>
    public Tensor forward(Tensor x, Tensor? mask, RotaryTables? rotary = null)
    {
        ArgumentNullException.ThrowIfNull(x);
        using var scope = NewDisposeScope();
        var a = attn.forward(norm1.forward(x), mask, rotary);
        x = x + drop_path.forward(gamma_1 is null ? a : gamma_1 * a);
        var m = mlp.forward(norm2.forward(x));
        x = x + drop_path.forward(gamma_2 is null ? m : gamma_2 * m);
        return scope.MoveToOuter(x);
    }

    /// <inheritdoc/>
    public IEnumerable<string> NoWeightDecayParameterNames() => NoWeightDecay.Compose(this, ["gamma_1", "gamma_2"]);
}
