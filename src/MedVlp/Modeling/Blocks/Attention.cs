using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace MedVlp.Modeling.Blocks;

/// <summary>How the fused <c>qkv</c> projection of <see cref="Attention"/> is biased.</summary>
public enum QkvBias
{
    /// <summary>No bias.</summary>
    None,

    /// <summary>One bias on the fused projection (timm: <c>qkv.bias</c>).</summary>
    Fused,

    /// <summary>
    /// EVA / BEiT / LAVIS: <c>qkv</c> has no bias, separate <c>q_bias</c> and <c>v_bias</c> parameters, and the key bias is
    /// fixed at zero.
    /// </summary>
    QueryValue,
}

/// <summary>Sizes and options of <see cref="Attention"/>.</summary>
public sealed record AttentionOptions
{
    /// <summary>Token width.</summary>
    public required int Width { get; init; }

    /// <summary>Attention heads (the width must be a multiple).</summary>
    public required int Heads { get; init; }

    /// <summary>The bias layout of <c>qkv</c>.</summary>
    public QkvBias QkvBias { get; init; } = QkvBias.Fused;

    /// <summary>Whether <c>proj</c> has a bias.</summary>
    public bool ProjectionBias { get; init; } = true;

    /// <summary>Dropout on attention probabilities (training only).</summary>
    public double AttentionDropout { get; init; }

    /// <summary>Dropout after the output projection (training only).</summary>
    public double ProjectionDropout { get; init; }

    internal void Validate()
    {
        if (Width <= 0 || Heads <= 0 || Width % Heads != 0 || AttentionDropout is < 0 or >= 1 || ProjectionDropout is < 0 or >= 1)
        {
            throw new ArgumentException($"Invalid attention options {this}: the width must be a positive multiple of the heads and dropouts in [0, 1).");
        }
    }
}

/// <summary>
/// Multi-head self-attention with a fused <c>qkv</c> projection and an output <c>proj</c> (timm's and EVA's
/// <c>Attention</c>), with an optional mask, rotary position embedding and key/value cache.
/// </summary>
public sealed class Attention : Module<Tensor, Tensor>, INoWeightDecay
{
#pragma warning disable IDE1006, SA1300 // State-dict names follow timm / EVA.
    private readonly Linear qkv;
    private readonly Parameter? q_bias;
    private readonly Parameter? v_bias;
    private readonly Linear proj;
    private readonly Dropout proj_drop;
#pragma warning restore IDE1006, SA1300

    /// <summary>Creates the block on <paramref name="device"/> with TorchSharp's default initialisation (biases zero).</summary>
    public Attention(AttentionOptions options, Device? device = null)
        : base(nameof(Attention))
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Options = options;
        qkv = Linear(options.Width, 3L * options.Width, hasBias: options.QkvBias == QkvBias.Fused, device: device);
        if (options.QkvBias == QkvBias.QueryValue)
        {
            q_bias = new Parameter(zeros(options.Width, device: device));
            v_bias = new Parameter(zeros(options.Width, device: device));
        }

        proj = Linear(options.Width, options.Width, hasBias: options.ProjectionBias, device: device);
        proj_drop = Dropout(options.ProjectionDropout);
        RegisterComponents();
    }

    /// <summary>The options.</summary>
    public AttentionOptions Options { get; }

    /// <summary>Self-attention over (B x T x width) tokens without mask, rotary embedding or cache.</summary>
    public override Tensor forward(Tensor x) => forward(x, null);

    /// <summary>Self-attention over (B x T x width) tokens.</summary>
    /// <param name="x">Tokens.</param>
    /// <param name="mask">Optional mask broadcastable to (B x heads x T x keys), boolean or additive (see <see cref="AttentionMask"/>).</param>
    /// <param name="rotary">Optional rotary tables applied to queries and keys.</param>
    /// <param name="cache">Optional cache: the new keys and values are appended and attention runs over all of them.</param>
    public Tensor forward(Tensor x, Tensor? mask, RotaryTables? rotary = null, AttentionCache? cache = null)
    {
        ArgumentNullException.ThrowIfNull(x);
        AttentionMath.CheckTokens(x, Options.Width, nameof(x));
        using var scope = NewDisposeScope();
        var b = x.shape[0];
        var t = x.shape[1];
        var heads = Options.Heads;
        var bias = Options.QkvBias switch
        {
            QkvBias.QueryValue => cat([q_bias!, zeros_like(v_bias!, requires_grad: false), v_bias!]),
            QkvBias.Fused => qkv.bias,
            _ => null,
        };
        var parts = F.linear(x, qkv.weight!, bias).reshape(b, t, 3, heads, -1).permute(2, 0, 3, 1, 4);
        Tensor q = parts[0], k = parts[1], v = parts[2];
        if (rotary is not null)
        {
            q = rotary.Apply(q);
            k = rotary.Apply(k);
        }

        if (cache is not null)
        {
            (k, v) = cache.Append(k, v);
        }

        var context = AttentionMath.Attend(q, k, v, mask, training ? Options.AttentionDropout : 0);
        return scope.MoveToOuter(proj_drop.forward(proj.forward(AttentionMath.MergeHeads(context))));
    }

    /// <inheritdoc/>
    public IEnumerable<string> NoWeightDecayParameterNames() =>
        NoWeightDecay.Compose(this, Options.QkvBias == QkvBias.QueryValue ? ["q_bias", "v_bias"] : []);
}
