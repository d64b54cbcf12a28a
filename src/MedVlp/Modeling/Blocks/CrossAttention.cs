using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace MedVlp.Modeling.Blocks;

/// <summary>
/// Multi-head cross-attention (timm layout: <c>q</c>, fused <c>kv</c>, <c>proj</c>): queries from (B x Tq x width)
/// tokens, keys and values from a (B x Tk x contextWidth) context of a possibly different width.
/// </summary>
public sealed class CrossAttention : Module<Tensor, Tensor, Tensor>, INoWeightDecay
{
#pragma warning disable IDE1006, SA1300 // State-dict names follow timm.
    private readonly Linear q;
    private readonly Linear kv;
    private readonly Linear proj;
#pragma warning restore IDE1006, SA1300

    /// <summary>Creates the block.</summary>
    /// <param name="width">Width of the queries and of the output.</param>
    /// <param name="heads">Attention heads.</param>
    /// <param name="contextWidth">Width of the context tokens (keys and values); <paramref name="width"/> when null.</param>
    /// <param name="bias">Whether the projections have biases.</param>
    /// <param name="device">Where the parameters live.</param>
    public CrossAttention(int width, int heads, int? contextWidth = null, bool bias = true, Device? device = null)
        : base(nameof(CrossAttention))
    {
        if (width <= 0 || heads <= 0 || width % heads != 0 || contextWidth is <= 0)
        {
            throw new ArgumentException($"Cross-attention needs a width that is a positive multiple of the heads and a positive context width, got width {width}, heads {heads}, context {contextWidth}.");
        }

        Heads = heads;
        Width = width;
        ContextWidth = contextWidth ?? width;
        q = Linear(width, width, hasBias: bias, device: device);
        kv = Linear(contextWidth ?? width, 2L * width, hasBias: bias, device: device);
        proj = Linear(width, width, hasBias: bias, device: device);
        RegisterComponents();
    }

    /// <summary>Attention heads.</summary>
    public int Heads { get; }

    /// <summary>Width of the queries and the output.</summary>
    public int Width { get; }

    /// <summary>Width of the context tokens.</summary>
    public int ContextWidth { get; }

    /// <summary>Attends (B x Tq x width) queries to a (B x Tk x contextWidth) context.</summary>
    public override Tensor forward(Tensor x, Tensor context) => forward(x, context, null);

    /// <summary>Attends queries to a context, with an optional mask broadcastable to (B x heads x Tq x Tk) (e.g. <see cref="AttentionMask.Padding"/> of the context).</summary>
    public Tensor forward(Tensor x, Tensor context, Tensor? mask)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(context);
        AttentionMath.CheckTokens(x, Width, nameof(x));
        AttentionMath.CheckTokens(context, ContextWidth, nameof(context));
        if (context.shape[0] != x.shape[0])
        {
            throw new ArgumentException($"The context batch {context.shape[0]} differs from the query batch {x.shape[0]}.", nameof(context));
        }

        using var scope = NewDisposeScope();
        var query = AttentionMath.SplitHeads(q.forward(x), Heads);
        var b = context.shape[0];
        var t = context.shape[1];
        var keyValue = kv.forward(context).reshape(b, t, 2, Heads, -1).permute(2, 0, 3, 1, 4);
        var attended = AttentionMath.Attend(query, keyValue[0], keyValue[1], mask);
        return scope.MoveToOuter(proj.forward(AttentionMath.MergeHeads(attended)));
    }

    /// <inheritdoc/>
    public IEnumerable<string> NoWeightDecayParameterNames() => NoWeightDecay.Compose(this);
}
