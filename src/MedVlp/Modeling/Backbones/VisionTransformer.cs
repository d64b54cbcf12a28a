using MedVlp.Modeling.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace MedVlp.Modeling.Backbones;

/// <summary>Sizes of a <see cref="VisionTransformer"/> (timm's <c>VisionTransformer</c> with a class token).</summary>
public sealed record VisionTransformerConfig
{
    /// <summary>timm's <c>vit_base_patch16_224</c>: 224 px, patch 16, width 768, 12 blocks, 12 heads, MLP 3072, 1000 classes.</summary>
    public static VisionTransformerConfig Base16 { get; } = new();

    /// <summary>Edge length of the square input image.</summary>
    public int ImageSize { get; init; } = 224;

    /// <summary>Edge length of a patch.</summary>
    public int PatchSize { get; init; } = 16;

    /// <summary>Input channels.</summary>
    public int InChannels { get; init; } = 3;

    /// <summary>Token width (<c>embed_dim</c>).</summary>
    public int Width { get; init; } = 768;

    /// <summary>Transformer blocks.</summary>
    public int Depth { get; init; } = 12;

    /// <summary>Attention heads.</summary>
    public int Heads { get; init; } = 12;

    /// <summary>MLP hidden size as a multiple of the width, truncated as <c>int(width * ratio)</c>.</summary>
    public double MlpRatio { get; init; } = 4.0;

    /// <summary>LayerNorm epsilon (timm: 1e-6).</summary>
    public double LayerNormEps { get; init; } = 1e-6;

    /// <summary>Classes of the <c>head</c>; null for a feature extractor without one (timm's <c>num_classes=0</c>).</summary>
    public int? NumClasses { get; init; } = 1000;

    /// <summary>Largest stochastic-depth probability (linearly increasing over the blocks).</summary>
    public double DropPathRate { get; init; }

    /// <summary>Patches along each side.</summary>
    public int GridSize => ImageSize / PatchSize;

    internal void Validate()
    {
        if (ImageSize <= 0 || PatchSize <= 0 || ImageSize % PatchSize != 0 || InChannels <= 0 || Width <= 0 || Depth < 0 || Heads <= 0 ||
            Width % Heads != 0 || !(MlpRatio > 0) || LayerNormEps <= 0 || NumClasses is <= 0 || DropPathRate is < 0 or >= 1)
        {
            throw new ArgumentException($"Invalid ViT configuration {this}: the image size must be a multiple of the patch size, the width a multiple of the heads, sizes positive.");
        }
    }
}

/// <summary>
/// A 2D vision transformer with timm's <c>VisionTransformer</c> state-dict names (<c>patch_embed.proj</c>,
/// <c>cls_token</c>, <c>pos_embed</c>, <c>blocks.{i}.norm1</c>, <c>attn.qkv</c>, <c>attn.proj</c>, <c>norm2</c>,
/// <c>mlp.fc1</c>, <c>mlp.fc2</c>, <c>norm</c>, <c>head</c>), so timm checkpoints load through the <c>timm-vit</c> layout.
/// Pre-norm blocks with exact GELU, class-token pooling (<c>global_pool="token"</c>). <c>forward(images)</c> returns
/// the head's logits, or the normed class token when there is no head.
/// </summary>
public sealed class VisionTransformer : Module<Tensor, Tensor>, INoWeightDecay
{
#pragma warning disable IDE1006, SA1300 // State-dict names follow timm.
    private readonly PatchEmbed2d patch_embed;
    private readonly Parameter cls_token;
    private readonly Parameter pos_embed;
    private readonly ModuleList<TransformerLayer> blocks;
    private readonly LayerNorm norm;
    private readonly Linear? head;
#pragma warning restore IDE1006, SA1300

    /// <summary>Creates the model (timm's initialisation: normal std 0.02 for tokens and Linear weights, zero biases) unless on <c>meta</c>.</summary>
    public VisionTransformer(VisionTransformerConfig config, Device? device = null)
        : base(nameof(VisionTransformer))
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
        patch_embed = new PatchEmbed2d(config.InChannels, config.Width, config.PatchSize, device: device);
        cls_token = new Parameter(zeros([1, 1, config.Width], device: device));
        pos_embed = new Parameter(zeros([1, ((long)config.GridSize * config.GridSize) + 1, config.Width], device: device));
        blocks = new ModuleList<TransformerLayer>(Enumerable.Range(0, config.Depth).Select(i => new TransformerLayer(
            new TransformerLayerOptions
            {
                Width = config.Width,
                Heads = config.Heads,
                MlpHidden = (int)(config.Width * config.MlpRatio),
                FeedForward = FeedForwardKind.Gelu,
                QkvBias = QkvBias.Fused,
                NormFirst = true,
                LayerNormEps = config.LayerNormEps,
                DropPath = config.Depth > 1 ? config.DropPathRate * i / (config.Depth - 1) : 0,
            },
            device)).ToArray());
        norm = LayerNorm(config.Width, config.LayerNormEps, device: device);
        head = config.NumClasses is { } classes ? Linear(config.Width, classes, device: device) : null;
        RegisterComponents();
        if (device is null || device.type != DeviceType.META)
        {
            // timm's trunc_normal_(std=0.02) truncates at +-2 absolute, which a std of 0.02 never reaches: a plain normal.
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

            init.normal_(cls_token, 0, 1e-6);
            init.normal_(pos_embed, 0, 0.02);
        }
    }

    /// <summary>The configuration.</summary>
    public VisionTransformerConfig Config { get; }

    /// <summary>Normed tokens (B x (1 + N) x width) of (B x C x H x W) images, the class token first (timm's <c>forward_features</c>).</summary>
    public Tensor ForwardFeatures(Tensor images)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.Dimensions != 4 || images.shape[2] != Config.ImageSize || images.shape[3] != Config.ImageSize)
        {
            throw new ArgumentException($"Expected (batch x {Config.InChannels} x {Config.ImageSize} x {Config.ImageSize}) images, got [{string.Join(", ", images.shape)}].", nameof(images));
        }

        using var scope = NewDisposeScope();
        var x = patch_embed.forward(images);
        x = cat([cls_token.expand(x.shape[0], -1, -1), x], 1) + pos_embed;
        foreach (var block in blocks)
        {
            x = block.forward(x);
        }

        return scope.MoveToOuter(norm.forward(x));
    }

    /// <summary>The head's logits (B x classes) of the class token, or the class token (B x width) without a head.</summary>
    public override Tensor forward(Tensor images)
    {
        using var scope = NewDisposeScope();
        var token = ForwardFeatures(images).select(1, 0);
        return scope.MoveToOuter(head is null ? token : head.forward(token));
    }

    /// <inheritdoc/>
    public IEnumerable<string> NoWeightDecayParameterNames() => NoWeightDecay.Compose(this, "cls_token", "pos_embed");
}
