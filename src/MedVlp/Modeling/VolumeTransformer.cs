using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace MedVlp.Modeling;

/// <summary>
/// A 3D vision transformer for volumes: Conv3d patch embedding (MedBLIP's <c>patch_embed.proj</c>), a learnable
/// <c>cls_token</c> and 3D position embedding (<c>pos_embed</c>, trunc-normal std 0.02), pre-norm transformer blocks
/// (timm/EVA names: <c>blocks.N.norm1</c>, <c>attn.qkv</c>, <c>attn.proj</c>, <c>norm2</c>, <c>mlp.fc1</c>, <c>mlp.fc2</c>),
/// a final <c>norm</c> and attention pooling with a learned latent query (<c>attn_pool</c>).
/// <c>forward(x)</c> maps (B x C x D x H x W) to a pooled (B x width) feature.
/// </summary>
public sealed class VolumeTransformer : Module<Tensor, Tensor>
{
#pragma warning disable IDE1006, SA1300 // State-dict names follow timm / MedBLIP.
    private readonly PatchEmbed3d patch_embed;
    private readonly Parameter cls_token;
    private readonly Parameter pos_embed;
    private readonly ModuleList<VitBlock> blocks;
    private readonly LayerNorm norm;
    private readonly AttentionPool attn_pool;
#pragma warning restore IDE1006, SA1300

    /// <summary>Creates the encoder on <paramref name="device"/>.</summary>
    public VolumeTransformer(VolumeEncoderConfig config, Device? device = null)
        : base(nameof(VolumeTransformer))
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
        var tokens = (long)config.GridSize * config.GridSize * config.GridSize;
        patch_embed = new PatchEmbed3d(config, device);
        cls_token = new Parameter(zeros([1, 1, config.Width], device: device));
        pos_embed = new Parameter(zeros([1, tokens + 1, config.Width], device: device));
        blocks = new ModuleList<VitBlock>(Enumerable.Range(0, config.Depth).Select(_ => new VitBlock(config, device)).ToArray());
        norm = LayerNorm(config.Width, config.LayerNormEps, device: device);
        attn_pool = new AttentionPool(config, device);
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
    public VolumeEncoderConfig Config { get; }

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
        return scope.MoveToOuter(attn_pool.forward(ForwardTokens(volumes)));
    }
}

internal sealed class PatchEmbed3d : Module<Tensor, Tensor>
{
#pragma warning disable IDE1006, SA1300
    private readonly Conv3d proj;
#pragma warning restore IDE1006, SA1300

    public PatchEmbed3d(VolumeEncoderConfig c, Device? device)
        : base(nameof(PatchEmbed3d))
    {
        proj = Conv3d(c.InChannels, c.Width, c.PatchSize, stride: c.PatchSize, device: device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        // (B, C, D, H, W) -> (B, width, d, h, w) -> (B, d*h*w, width)
        return scope.MoveToOuter(proj.forward(x).flatten(2).transpose(1, 2));
    }
}

internal sealed class VitBlock : Module<Tensor, Tensor>
{
#pragma warning disable IDE1006, SA1300
    private readonly LayerNorm norm1;
    private readonly VitAttention attn;
    private readonly LayerNorm norm2;
    private readonly VitMlp mlp;
#pragma warning restore IDE1006, SA1300

    public VitBlock(VolumeEncoderConfig c, Device? device)
        : base(nameof(VitBlock))
    {
        norm1 = LayerNorm(c.Width, c.LayerNormEps, device: device);
        attn = new VitAttention(c, device);
        norm2 = LayerNorm(c.Width, c.LayerNormEps, device: device);
        mlp = new VitMlp(c, device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        x = x + attn.forward(norm1.forward(x));
        x = x + mlp.forward(norm2.forward(x));
        return scope.MoveToOuter(x);
    }
}

internal sealed class VitAttention : Module<Tensor, Tensor>
{
#pragma warning disable IDE1006, SA1300
    private readonly Linear qkv;
    private readonly Linear proj;
#pragma warning restore IDE1006, SA1300
    private readonly int heads;

    public VitAttention(VolumeEncoderConfig c, Device? device)
        : base(nameof(VitAttention))
    {
        qkv = Linear(c.Width, 3L * c.Width, device: device);
        proj = Linear(c.Width, c.Width, device: device);
        heads = c.Heads;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var b = x.shape[0];
        var t = x.shape[1];
        var w = x.shape[2];
        // (B, T, 3, heads, d) -> (3, B, heads, T, d)
        var parts = qkv.forward(x).reshape(b, t, 3, heads, w / heads).permute(2, 0, 3, 1, 4);
        var context = F.scaled_dot_product_attention(parts[0], parts[1], parts[2]);
        return scope.MoveToOuter(proj.forward(MultiHead.Merge(context)));
    }
}

internal sealed class VitMlp : Module<Tensor, Tensor>
{
#pragma warning disable IDE1006, SA1300
    private readonly Linear fc1;
    private readonly Linear fc2;
#pragma warning restore IDE1006, SA1300

    public VitMlp(VolumeEncoderConfig c, Device? device)
        : base(nameof(VitMlp))
    {
        var hidden = (long)Math.Round(c.Width * c.MlpRatio);
        fc1 = Linear(c.Width, hidden, device: device);
        fc2 = Linear(hidden, c.Width, device: device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return scope.MoveToOuter(fc2.forward(F.gelu(fc1.forward(x))));
    }
}

/// <summary>Attention pooling with one learned latent query (timm's AttentionPoolLatent without its MLP): <c>latent</c>, <c>q</c>, <c>kv</c>, <c>proj</c>.</summary>
internal sealed class AttentionPool : Module<Tensor, Tensor>
{
#pragma warning disable IDE1006, SA1300
    private readonly Parameter latent;
    private readonly Linear q;
    private readonly Linear kv;
    private readonly Linear proj;
#pragma warning restore IDE1006, SA1300
    private readonly int heads;

    public AttentionPool(VolumeEncoderConfig c, Device? device)
        : base(nameof(AttentionPool))
    {
        latent = new Parameter(zeros([1, 1, c.Width], device: device));
        q = Linear(c.Width, c.Width, device: device);
        kv = Linear(c.Width, 2L * c.Width, device: device);
        proj = Linear(c.Width, c.Width, device: device);
        heads = c.Heads;
        RegisterComponents();
        if (device is null || device.type != DeviceType.META)
        {
            using var noGrad = no_grad();
            init.normal_(latent, 0, 0.02);
        }
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var b = x.shape[0];
        var t = x.shape[1];
        var w = x.shape[2];
        var query = MultiHead.Split(q.forward(latent.expand(b, -1, -1)), heads);
        var keyValue = kv.forward(x).reshape(b, t, 2, heads, w / heads).permute(2, 0, 3, 1, 4);
        var pooled = F.scaled_dot_product_attention(query, keyValue[0], keyValue[1]);
        return scope.MoveToOuter(proj.forward(MultiHead.Merge(pooled)).squeeze(1));
    }
}
