using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace MedVlp.Modeling.Blocks;

/// <summary>
/// Attention pooling with learned latent queries (timm's <c>AttentionPoolLatent</c> without its MLP): <c>latent</c>
/// (1 x queries x width, normal std 0.02), <c>q</c>, <c>kv</c>, <c>proj</c>. Maps (B x T x width) tokens to
/// (B x queries x width).
/// </summary>
public sealed class AttentionPool : Module<Tensor, Tensor>, INoWeightDecay
{
#pragma warning disable IDE1006, SA1300 // State-dict names follow timm.
    private readonly Parameter latent;
    private readonly Linear q;
    private readonly Linear kv;
    private readonly Linear proj;
#pragma warning restore IDE1006, SA1300

    /// <summary>Creates the pool.</summary>
    /// <param name="width">Token width.</param>
    /// <param name="heads">Attention heads.</param>
    /// <param name="queries">Learned latent queries (1 for one pooled vector).</param>
    /// <param name="device">Where the parameters live; on <c>meta</c> nothing is initialised.</param>
    public AttentionPool(int width, int heads, int queries = 1, Device? device = null)
        : base(nameof(AttentionPool))
    {
        if (width <= 0 || heads <= 0 || width % heads != 0 || queries <= 0)
        {
            throw new ArgumentException($"Attention pooling needs a width that is a positive multiple of the heads and at least one query, got width {width}, heads {heads}, queries {queries}.");
        }

        Heads = heads;
        latent = new Parameter(zeros([1, queries, width], device: device));
        q = Linear(width, width, device: device);
        kv = Linear(width, 2L * width, device: device);
        proj = Linear(width, width, device: device);
        RegisterComponents();
        if (device is null || device.type != DeviceType.META)
        {
            using var noGrad = no_grad();
            init.normal_(latent, 0, 0.02);
        }
    }

    /// <summary>Attention heads.</summary>
    public int Heads { get; }

    /// <summary>Pools (B x T x width) tokens into (B x queries x width).</summary>
    public override Tensor forward(Tensor x) => forward(x, null);

    /// <summary>Pools tokens, with an optional mask broadcastable to (B x heads x queries x T) (e.g. <see cref="AttentionMask.Padding"/>).</summary>
    public Tensor forward(Tensor x, Tensor? mask)
    {
        AttentionMath.CheckTokens(x, latent.shape[2], nameof(x));
        using var scope = NewDisposeScope();
        var b = x.shape[0];
        var t = x.shape[1];
        var query = AttentionMath.SplitHeads(q.forward(latent.expand(b, -1, -1)), Heads);
        var keyValue = kv.forward(x).reshape(b, t, 2, Heads, -1).permute(2, 0, 3, 1, 4);
        var pooled = AttentionMath.Attend(query, keyValue[0], keyValue[1], mask);
        return scope.MoveToOuter(proj.forward(AttentionMath.MergeHeads(pooled)));
    }

    /// <inheritdoc/>
    public IEnumerable<string> NoWeightDecayParameterNames() => NoWeightDecay.Compose(this, "latent");
}
