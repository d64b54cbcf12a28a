using MedVlp.Modeling.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace MedVlp.Modeling;

/// <summary>
/// A 3D vision transformer for volumes, built from <see cref="MedVlp.Modeling.Blocks"/>: Conv3d patch embedding
/// (<see cref="PatchEmbed3d"/>, MedBLIP's <c>patch_embed.proj</c>), a learnable <c>cls_token</c> and 3D position
/// embedding (<c>pos_embed</c>, trunc-normal std 0.02), pre-norm <see cref="TransformerLayer"/>s (timm/EVA names:
/// <c>blocks.N.norm1</c>, <c>attn.qkv</c>, <c>attn.proj</c>, <c>norm2</c>, <c>mlp.fc1</c>, <c>mlp.fc2</c>), a final
/// <c>norm</c> and attention pooling with a learned latent query (<see cref="AttentionPool"/>, <c>attn_pool</c>).
/// <c>forward(x)</c> maps (B x C x D x H x W) to a pooled (B x width) feature.
/// </summary>
public sealed class VolumeTransformer : Module<Tensor, Tensor>, INoWeightDecay
{
#pragma warning disable IDE1006, SA1300 // State-dict names follow timm / MedBLIP.
    private readonly PatchEmbed3d patch_embed;
    private readonly Parameter cls_token;
    private readonly Parameter pos_embed;
    private readonly ModuleList<TransformerLayer> blocks;
    private readonly LayerNorm norm;
    private readonly AttentionPool attn_pool;
#pragma warning restore IDE1006, SA1300

    /// <summary>Creates the encoder on <paramref name="device"/>.</summary>
    public VolumeTransformer(VolumeTransformerConfig config, Device? device = null)
        : base(nameof(VolumeTransformer))
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
        var tokens = (long)config.GridSize * config.GridSize * config.GridSize;
        patch_embed = new PatchEmbed3d(config.InChannels, config.Width, config.PatchSize, device: device);
        cls_token = new Parameter(zeros([1, 1, config.Width], device: device));
        pos_embed = new Parameter(zeros([1, tokens + 1, config.Width], device: device));
        var layer = new TransformerLayerOptions
        {
            Width = config.Width,
            Heads = config.Heads,
            MlpHidden = (int)Math.Round(config.Width * config.MlpRatio),
            FeedForward = FeedForwardKind.Gelu,
            QkvBias = QkvBias.Fused,
            NormFirst = true,
            LayerNormEps = config.LayerNormEps,
        };
        blocks = new ModuleList<TransformerLayer>(Enumerable.Range(0, config.Depth).Select(_ => new TransformerLayer(layer, device)).ToArray());
        norm = LayerNorm(config.Width, config.LayerNormEps, device: device);
        attn_pool = new AttentionPool(config.Width, config.Heads, 1, device);
        RegisterComponents();
        if (device is null || device.type != DeviceType.META)
        {
            // timm's trunc_normal_(std=0.02) truncates at +-2 absolute, i.e. never: it is a plain normal(0, 0.02).
            // (TorchSharp 0.107's trunc_normal_ returns values of the order of 1e-9 instead, so it is not used.)
            using var noGrad = no_grad();
            foreach (var (_, m) in named_modules())
            {
                if (m is Linear linear)
                {
                    init.normal_(linear.weight, 0, 0.02);
                    if (linear.bias is not null)
                    {
                        init.zeros_(linear.bias);
                    }
                }
            }

            init.normal_(cls_token, 0, 0.02);
            init.normal_(pos_embed, 0, 0.02);
        }
    }

    /// <summary>The configuration.</summary>
    public VolumeTransformerConfig Config { get; }

    /// <summary>Patch tokens after the final norm (B x (1 + N) x width), the CLS token first.</summary>
    public Tensor ForwardTokens(Tensor volumes)
    {
        using var scope = NewDisposeScope();
        var x = patch_embed.forward(volumes);
        var cls = cls_token.expand(x.shape[0], -1, -1);
        x = cat([cls, x], 1) + pos_embed;
        foreach (var block in blocks)
        {
            x = block.forward(x);
        }

        return scope.MoveToOuter(norm.forward(x));
    }

    /// <summary>The pooled feature (B x width).</summary>
    public override Tensor forward(Tensor volumes)
    {
        using var scope = NewDisposeScope();
        return scope.MoveToOuter(attn_pool.forward(ForwardTokens(volumes)).squeeze(1));
    }

    /// <inheritdoc/>
    public IEnumerable<string> NoWeightDecayParameterNames() => NoWeightDecay.Compose(this, "cls_token", "pos_embed");
}
