using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace MedVlp.Modeling.Blocks;

/// <summary>
/// timm's <c>EvaAttention</c> with separate projections (<c>qkv_fused=False</c>): <c>q_proj</c> (bias), <c>k_proj</c>
/// (no bias), <c>v_proj</c> (bias), optional rotary embedding on queries and keys, and an optional LayerNorm of the
/// attention output before <c>proj</c> (<c>norm</c>, timm's <c>scale_attn_inner</c>, used by Primus and EVA-02-L).
/// </summary>
public sealed class EvaAttention : Module<Tensor, Tensor>, INoWeightDecay
{
#pragma warning disable IDE1006, SA1300 // State-dict names follow timm.
    private readonly Linear q_proj;
    private readonly Linear k_proj;
    private readonly Linear v_proj;
    private readonly LayerNorm? norm;
    private readonly Linear proj;
#pragma warning restore IDE1006, SA1300
    private readonly int heads;

    /// <summary>Creates the attention.</summary>
    /// <param name="width">Token width (a multiple of <paramref name="heads"/>).</param>
    /// <param name="heads">Attention heads.</param>
    /// <param name="innerNorm">LayerNorm the attention output before the projection (<c>scale_attn_inner</c>).</param>
    /// <param name="layerNormEps">Epsilon of that norm.</param>
    /// <param name="device">Where the weights live.</param>
    public EvaAttention(int width, int heads, bool innerNorm, double layerNormEps = 1e-5, Device? device = null)
        : base(nameof(EvaAttention))
    {
        if (width <= 0 || heads <= 0 || width % heads != 0)
        {
            throw new ArgumentException($"EVA attention needs a width that is a positive multiple of the heads, got width {width}, heads {heads}.");
        }

        this.heads = heads;
        q_proj = Linear(width, width, hasBias: true, device: device);
        k_proj = Linear(width, width, hasBias: false, device: device);
        v_proj = Linear(width, width, hasBias: true, device: device);
        norm = innerNorm ? LayerNorm(width, layerNormEps, device: device) : null;
        proj = Linear(width, width, device: device);
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x) => forward(x, null);

    /// <summary>Self-attention over (B x T x width) tokens with an optional mask and rotary tables.</summary>
    public Tensor forward(Tensor x, Tensor? mask, RotaryTables? rotary = null)
    {
        ArgumentNullException.ThrowIfNull(x);
        using var scope = NewDisposeScope();
        var q = AttentionMath.SplitHeads(q_proj.forward(x), heads);
        var k = AttentionMath.SplitHeads(k_proj.forward(x), heads);
        var v = AttentionMath.SplitHeads(v_proj.forward(x), heads);
        if (rotary is not null)
        {
            q = rotary.Apply(q);
            k = rotary.Apply(k);
        }

        var context = AttentionMath.MergeHeads(AttentionMath.Attend(q, k, v, mask));
        if (norm is not null)
        {
            context = norm.forward(context);
        }

        return scope.MoveToOuter(proj.forward(context));
    }

    /// <inheritdoc/>
    public IEnumerable<string> NoWeightDecayParameterNames() => NoWeightDecay.Compose(this);
}
