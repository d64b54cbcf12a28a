using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace MedVlp.Modeling.Blocks;

/// <summary>Sizes and options of a <see cref="Gpt2Block"/> (Hugging Face <c>GPT2Config</c> names in the docs).</summary>
public sealed record Gpt2BlockOptions
{
    /// <summary>Width (<c>n_embd</c>).</summary>
    public required int Width { get; init; }

    /// <summary>Attention heads (<c>n_head</c>).</summary>
    public required int Heads { get; init; }

    /// <summary>MLP hidden size (<c>n_inner</c>, 4 x width by default).</summary>
    public required int Inner { get; init; }

    /// <summary>LayerNorm epsilon (<c>layer_norm_epsilon</c>).</summary>
    public double LayerNormEps { get; init; } = 1e-5;

    /// <summary>Dropout on attention probabilities (<c>attn_pdrop</c>).</summary>
    public double AttentionDropout { get; init; }

    /// <summary>Dropout on residual branches (<c>resid_pdrop</c>).</summary>
    public double ResidualDropout { get; init; }

    /// <summary>The MLP activation (GPT-2: <c>gelu_new</c>, GELU's tanh approximation).</summary>
    public MlpActivation Activation { get; init; } = MlpActivation.GeluTanh;
}

/// <summary>
/// GPT-2's causal self-attention (Hugging Face <c>GPT2Attention</c>): fused <c>c_attn</c> (width -&gt; 3 x width) and
/// <c>c_proj</c>. These are <c>Linear</c> layers ([out, in] weights); Hugging Face's <c>Conv1D</c> stores
/// [in, out], so a checkpoint loader transposes <c>c_attn</c>, <c>c_proj</c>, <c>c_fc</c> weights.
/// </summary>
public sealed class Gpt2Attention : Module<Tensor, Tensor>, INoWeightDecay
{
#pragma warning disable IDE1006, SA1300 // State-dict names follow Hugging Face.
    private readonly Linear c_attn;
    private readonly Linear c_proj;
    private readonly Dropout resid_dropout;
#pragma warning restore IDE1006, SA1300
    private readonly Gpt2BlockOptions _options;

    /// <summary>Creates the block.</summary>
    public Gpt2Attention(Gpt2BlockOptions options, Device? device = null)
        : base(nameof(Gpt2Attention))
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Width <= 0 || options.Heads <= 0 || options.Width % options.Heads != 0)
        {
            throw new ArgumentException($"GPT-2 attention needs a width that is a positive multiple of the heads, got {options}.", nameof(options));
        }

        _options = options;
        c_attn = Linear(options.Width, 3L * options.Width, device: device);
        c_proj = Linear(options.Width, options.Width, device: device);
        resid_dropout = Dropout(options.ResidualDropout);
        RegisterComponents();
    }

    /// <summary>Causal self-attention without cache.</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var mask = AttentionMask.Causal(x.shape[1], x.shape[1], x.device);
        return scope.MoveToOuter(forward(x, mask));
    }

    /// <summary>Self-attention of (B x T x width) tokens under <paramref name="mask"/> (the caller builds the causal and padding mask over cached + new keys).</summary>
    public Tensor forward(Tensor x, Tensor? mask, AttentionCache? cache = null)
    {
        AttentionMath.CheckTokens(x, _options.Width, nameof(x));
        using var scope = NewDisposeScope();
        var parts = c_attn.forward(x).split(_options.Width, 2);
        var q = AttentionMath.SplitHeads(parts[0], _options.Heads);
        var k = AttentionMath.SplitHeads(parts[1], _options.Heads);
        var v = AttentionMath.SplitHeads(parts[2], _options.Heads);
        if (cache is not null)
        {
            (k, v) = cache.Append(k, v);
        }

        var context = AttentionMath.Attend(q, k, v, mask, training ? _options.AttentionDropout : 0);
        return scope.MoveToOuter(resid_dropout.forward(c_proj.forward(AttentionMath.MergeHeads(context))));
    }

    /// <inheritdoc/>
    public IEnumerable<string> NoWeightDecayParameterNames() => NoWeightDecay.Compose(this);
}

/// <summary>GPT-2's MLP (Hugging Face <c>GPT2MLP</c>): <c>c_fc</c>, <c>gelu_new</c>, <c>c_proj</c>, dropout.</summary>
public sealed class Gpt2Mlp : Module<Tensor, Tensor>, INoWeightDecay
{
#pragma warning disable IDE1006, SA1300 // State-dict names follow Hugging Face.
    private readonly Linear c_fc;
    private readonly Linear c_proj;
    private readonly Dropout dropout;
#pragma warning restore IDE1006, SA1300
    private readonly MlpActivation _activation;

    /// <summary>Creates the block.</summary>
    public Gpt2Mlp(Gpt2BlockOptions options, Device? device = null)
        : base(nameof(Gpt2Mlp))
    {
        ArgumentNullException.ThrowIfNull(options);
        c_fc = Linear(options.Width, options.Inner, device: device);
        c_proj = Linear(options.Inner, options.Width, device: device);
        dropout = Dropout(options.ResidualDropout);
        _activation = options.Activation;
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return scope.MoveToOuter(dropout.forward(c_proj.forward(Mlp.Activate(c_fc.forward(x), _activation))));
    }

    /// <inheritdoc/>
    public IEnumerable<string> NoWeightDecayParameterNames() => NoWeightDecay.Compose(this);
}

/// <summary>GPT-2's pre-norm block (Hugging Face <c>GPT2Block</c>): <c>ln_1</c>, <c>attn</c>, <c>ln_2</c>, <c>mlp</c>.</summary>
public sealed class Gpt2Block : Module<Tensor, Tensor>, INoWeightDecay
{
#pragma warning disable IDE1006, SA1300 // State-dict names follow Hugging Face.
    private readonly LayerNorm ln_1;
    private readonly Gpt2Attention attn;
    private readonly LayerNorm ln_2;
    private readonly Gpt2Mlp mlp;
#pragma warning restore IDE1006, SA1300

    /// <summary>Creates the block.</summary>
    public Gpt2Block(Gpt2BlockOptions options, Device? device = null)
        : base(nameof(Gpt2Block))
    {
        ArgumentNullException.ThrowIfNull(options);
        ln_1 = LayerNorm(options.Width, options.LayerNormEps, device: device);
        attn = new Gpt2Attention(options, device);
        ln_2 = LayerNorm(options.Width, options.LayerNormEps, device: device);
        mlp = new Gpt2Mlp(options, device);
        RegisterComponents();
    }

    /// <summary>The block with a plain causal mask and no cache.</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var mask = AttentionMask.Causal(x.shape[1], x.shape[1], x.device);
        return scope.MoveToOuter(forward(x, mask));
    }

    /// <summary>The block over (B x T x width) tokens under <paramref name="mask"/> (causal and padding over cached + new keys), with an optional cache.</summary>
    public Tensor forward(Tensor x, Tensor? mask, AttentionCache? cache = null)
    {
        ArgumentNullException.ThrowIfNull(x);
        using var scope = NewDisposeScope();
        x = x + attn.forward(ln_1.forward(x), mask, cache);
        x = x + mlp.forward(ln_2.forward(x));
        return scope.MoveToOuter(x);
    }

    /// <inheritdoc/>
    public IEnumerable<string> NoWeightDecayParameterNames() => NoWeightDecay.Compose(this);
}
