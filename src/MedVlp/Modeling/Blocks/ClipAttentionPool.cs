using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace MedVlp.Modeling.Blocks;

/// <summary>
/// CLIP's attention pooling (<c>AttentionPool2d</c> of the modified ResNet, used by PRIOR): the mean token is prepended,
/// a learned <c>positional_embedding</c> ((1 + tokens) x width) is added when configured, and the mean token attends to
/// all tokens with separate <c>q_proj</c>, <c>k_proj</c>, <c>v_proj</c> and an output <c>c_proj</c>.
/// Maps (B x tokens x width) to (B x outputWidth).
/// </summary>
public sealed class ClipAttentionPool : Module<Tensor, Tensor>, INoWeightDecay
{
#pragma warning disable IDE1006, SA1300 // State-dict names follow CLIP.
    private readonly Parameter? positional_embedding;
    private readonly Linear k_proj;
    private readonly Linear q_proj;
    private readonly Linear v_proj;
    private readonly Linear c_proj;
#pragma warning restore IDE1006, SA1300

    /// <summary>Creates the pool.</summary>
    /// <param name="width">Token width.</param>
    /// <param name="heads">Attention heads.</param>
    /// <param name="tokens">Number of tokens for the positional embedding (CLIP/PRIOR: 7 x 7 = 49); null for none.</param>
    /// <param name="outputWidth">Output width (<paramref name="width"/> when null).</param>
    /// <param name="device">Where the parameters live; on <c>meta</c> nothing is initialised.</param>
    public ClipAttentionPool(int width, int heads, int? tokens, int? outputWidth = null, Device? device = null)
        : base(nameof(ClipAttentionPool))
    {
        if (width <= 0 || heads <= 0 || width % heads != 0 || tokens is <= 0 || outputWidth is <= 0)
        {
            throw new ArgumentException($"CLIP attention pooling needs a width that is a positive multiple of the heads, got width {width}, heads {heads}, tokens {tokens}, output {outputWidth}.");
        }

        Heads = heads;
        if (tokens is { } count)
        {
            positional_embedding = new Parameter(zeros([count + 1L, width], device: device));
        }

        k_proj = Linear(width, width, device: device);
        q_proj = Linear(width, width, device: device);
        v_proj = Linear(width, width, device: device);
        c_proj = Linear(width, outputWidth ?? width, device: device);
        RegisterComponents();
        if (positional_embedding is not null && (device is null || device.type != DeviceType.META))
        {
            using var noGrad = no_grad();
            init.normal_(positional_embedding, 0, 1 / Math.Sqrt(width)); // CLIP: randn / sqrt(width)
        }
    }

    /// <summary>Attention heads.</summary>
    public int Heads { get; }

    /// <summary>Pools (B x tokens x width) into (B x outputWidth).</summary>
    public override Tensor forward(Tensor x) => forward(x, null);

    /// <summary>
    /// Pools (B x tokens x width) into (B x outputWidth), with padding: <paramref name="mask"/> (B x tokens, true or 1 =
    /// a real token) keeps padded tokens out of the mean query and out of the keys, so a row equals the pool of its real
    /// tokens alone (PRIOR pools each report's sentences this way). Every row needs a real token.
    /// </summary>
    /// <param name="x">Tokens (B x tokens x width).</param>
    /// <param name="mask">Which tokens are real (B x tokens); null when all are.</param>
    public Tensor forward(Tensor x, Tensor? mask)
    {
        ArgumentNullException.ThrowIfNull(x);
        using var scope = NewDisposeScope();
        Tensor? keys = null;
        if (mask is null)
        {
            x = cat([x.mean([1], keepdim: true), x], 1);
        }
        else
        {
            if (mask.dim() != 2 || mask.shape[0] != x.shape[0] || mask.shape[1] != x.shape[1])
            {
                throw new ArgumentException($"The token mask must be (B x tokens) = [{x.shape[0]}, {x.shape[1]}], got [{string.Join(", ", mask.shape)}].", nameof(mask));
            }

            var real = mask.ne(0);
            var counts = real.sum([1], keepdim: true);
            if (counts.eq(0).any().item<bool>())
            {
                throw new ArgumentException("Every row needs at least one real token to pool.", nameof(mask));
            }

            var weights = real.to(x.dtype).unsqueeze(2);
            x = cat([(x * weights).sum([1], keepdim: true) / counts.to(x.dtype).unsqueeze(2), x], 1);
            keys = cat([ones(x.shape[0], 1, dtype: ScalarType.Bool, device: x.device), real], 1).unsqueeze(1).unsqueeze(1);
        }

        if (positional_embedding is not null)
        {
            if (x.shape[1] != positional_embedding.shape[0])
            {
                throw new ArgumentException($"The positional embedding covers {positional_embedding.shape[0] - 1} tokens, got {x.shape[1] - 1}.", nameof(x));
            }

            x = x + positional_embedding;
        }

        var query = AttentionMath.SplitHeads(q_proj.forward(x.narrow(1, 0, 1)), Heads);
        var key = AttentionMath.SplitHeads(k_proj.forward(x), Heads);
        var value = AttentionMath.SplitHeads(v_proj.forward(x), Heads);
        var pooled = AttentionMath.MergeHeads(AttentionMath.Attend(query, key, value, keys));
        return scope.MoveToOuter(c_proj.forward(pooled).squeeze(1));
    }

    /// <summary>Pools a (B x C x H x W) or (B x C x D x H x W) feature map, as CLIP does (channels last, spatial flattened).</summary>
    public Tensor ForwardFeatureMap(Tensor features)
    {
        ArgumentNullException.ThrowIfNull(features);
        using var scope = NewDisposeScope();
        return scope.MoveToOuter(forward(features.flatten(2).transpose(1, 2)));
    }

    /// <inheritdoc/>
    public IEnumerable<string> NoWeightDecayParameterNames() =>
        NoWeightDecay.Compose(this, positional_embedding is null ? [] : ["positional_embedding"]);
}
