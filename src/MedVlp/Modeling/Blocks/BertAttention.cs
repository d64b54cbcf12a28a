using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace MedVlp.Modeling.Blocks;

/// <summary>
/// BERT's multi-head attention projections (Hugging Face <c>BertSelfAttention</c>): <c>query</c>, <c>key</c>,
/// <c>value</c>. For cross-attention the keys and values are projected from encoder states of another width.
/// Returns the merged context (B x Tq x hidden) before the output projection.
/// </summary>
public sealed class BertSelfAttention : Module<Tensor, Tensor>, INoWeightDecay
{
#pragma warning disable IDE1006, SA1300 // State-dict names follow Hugging Face.
    private readonly Linear query;
    private readonly Linear key;
    private readonly Linear value;
#pragma warning restore IDE1006, SA1300
    private readonly double _dropout;

    /// <summary>Creates the projections; keys and values read <paramref name="keyValueWidth"/>-wide states (the hidden size when null).</summary>
    public BertSelfAttention(int hiddenSize, int heads, int? keyValueWidth = null, double attentionDropout = 0, Device? device = null)
        : base(nameof(BertSelfAttention))
    {
        if (hiddenSize <= 0 || heads <= 0 || hiddenSize % heads != 0 || keyValueWidth is <= 0 || attentionDropout is < 0 or >= 1)
        {
            throw new ArgumentException($"BERT attention needs a hidden size that is a positive multiple of the heads, got hidden {hiddenSize}, heads {heads}, key/value width {keyValueWidth}, dropout {attentionDropout}.");
        }

        Heads = heads;
        _dropout = attentionDropout;
        query = Linear(hiddenSize, hiddenSize, device: device);
        key = Linear(keyValueWidth ?? hiddenSize, hiddenSize, device: device);
        value = Linear(keyValueWidth ?? hiddenSize, hiddenSize, device: device);
        RegisterComponents();
    }

    /// <summary>Attention heads.</summary>
    public int Heads { get; }

    /// <inheritdoc/>
    public override Tensor forward(Tensor hidden) => forward(hidden, null);

    /// <summary>Attention of <paramref name="hidden"/> to itself, or to <paramref name="encoderHidden"/> when given.</summary>
    /// <param name="hidden">Query states (B x Tq x hidden).</param>
    /// <param name="mask">Mask broadcastable to (B x heads x Tq x Tk), boolean or additive.</param>
    /// <param name="encoderHidden">Key/value states for cross-attention (B x Tk x keyValueWidth).</param>
    /// <param name="cache">Self-attention cache for incremental decoding (ignored for cross-attention).</param>
    public Tensor forward(Tensor hidden, Tensor? mask, Tensor? encoderHidden = null, AttentionCache? cache = null)
    {
        AttentionMath.CheckTokens(hidden, query.in_features, nameof(hidden));
        if (encoderHidden is not null)
        {
            AttentionMath.CheckTokens(encoderHidden, key.in_features, nameof(encoderHidden));
        }

        using var scope = NewDisposeScope();
        var source = encoderHidden ?? hidden;
        var q = AttentionMath.SplitHeads(query.forward(hidden), Heads);
        var k = AttentionMath.SplitHeads(key.forward(source), Heads);
        var v = AttentionMath.SplitHeads(value.forward(source), Heads);
        if (cache is not null && encoderHidden is null)
        {
            (k, v) = cache.Append(k, v);
        }

        var context = AttentionMath.Attend(q, k, v, mask, training ? _dropout : 0);
        return scope.MoveToOuter(AttentionMath.MergeHeads(context));
    }

    /// <inheritdoc/>
    public IEnumerable<string> NoWeightDecayParameterNames() => NoWeightDecay.Compose(this);
}

/// <summary>
/// BERT's attention block (Hugging Face <c>BertAttention</c>): <c>self</c> (<see cref="BertSelfAttention"/>) and
/// <c>output</c> (<see cref="BertOutput"/>: dense, dropout, residual, LayerNorm). Used for self-attention
/// (<c>attention</c>) and cross-attention (<c>crossattention</c>).
/// </summary>
public sealed class BertAttention : Module<Tensor, Tensor>, INoWeightDecay
{
#pragma warning disable IDE1006, SA1300 // State-dict names follow Hugging Face.
    private readonly BertSelfAttention self;
    private readonly BertOutput output;
#pragma warning restore IDE1006, SA1300

    /// <summary>Creates the block; keys and values read <paramref name="keyValueWidth"/>-wide states (cross-attention) or the hidden states (null).</summary>
    public BertAttention(BertLayerOptions options, int? keyValueWidth = null, Device? device = null)
        : base(nameof(BertAttention))
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        self = new BertSelfAttention(options.HiddenSize, options.Heads, keyValueWidth, options.AttentionDropout, device);
        output = new BertOutput(options.HiddenSize, options.HiddenSize, options.LayerNormEps, options.HiddenDropout, device);
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor hidden) => forward(hidden, null);

    /// <summary><c>LayerNorm(hidden + dense(attention(hidden)))</c>; see <see cref="BertSelfAttention.forward(Tensor, Tensor?, Tensor?, AttentionCache?)"/> for the arguments.</summary>
    public Tensor forward(Tensor hidden, Tensor? mask, Tensor? encoderHidden = null, AttentionCache? cache = null)
    {
        ArgumentNullException.ThrowIfNull(hidden);
        using var scope = NewDisposeScope();
        return scope.MoveToOuter(output.forward(self.forward(hidden, mask, encoderHidden, cache), hidden));
    }

    /// <inheritdoc/>
    public IEnumerable<string> NoWeightDecayParameterNames() => NoWeightDecay.Compose(this);
}
