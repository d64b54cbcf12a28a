using MedVlp.Modeling.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace MedVlp.Modeling.Backbones;

/// <summary>Sizes of an <see cref="EvaVisionTransformer"/> (LAVIS <c>eva_vit.VisionTransformer</c>).</summary>
public sealed record EvaVitConfig
{
    /// <summary>EVA ViT-g as BLIP-2 and MedBLIP use it: 224 px, patch 14, width 1408, 39 blocks (the penultimate layer of EVA-CLIP-g), 16 heads, MLP 6144.</summary>
    public static EvaVitConfig ViTg { get; } = new();

    /// <summary>Edge length of the square input image.</summary>
    public int ImageSize { get; init; } = 224;

    /// <summary>Edge length of a patch.</summary>
    public int PatchSize { get; init; } = 14;

    /// <summary>Input channels.</summary>
    public int InChannels { get; init; } = 3;

    /// <summary>Token width.</summary>
    public int Width { get; init; } = 1408;

    /// <summary>Transformer blocks.</summary>
    public int Depth { get; init; } = 39;

    /// <summary>Attention heads.</summary>
    public int Heads { get; init; } = 16;

    /// <summary>MLP hidden size as a multiple of the width, truncated as <c>int(width * ratio)</c> (ViT-g: 4.3637 gives 6144).</summary>
    public double MlpRatio { get; init; } = 4.3637;

    /// <summary>LayerNorm epsilon.</summary>
    public double LayerNormEps { get; init; } = 1e-6;

    /// <summary>Largest stochastic-depth probability (linearly increasing over the blocks).</summary>
    public double DropPathRate { get; init; }

    /// <summary>
    /// Epsilon of a LayerNorm over the output tokens, registered as <c>ln_vision</c>: BLIP-2 applies one after the ViT
    /// (LAVIS <c>ln_vision</c>, torch's default 1e-5; Hugging Face <c>post_layernorm</c>, <c>layer_norm_eps</c> 1e-6).
    /// Null (the default, as LAVIS' <c>eva_vit</c> and MedBLIP build the ViT) for none.
    /// </summary>
    public double? PostNormEps { get; init; }

    /// <summary>Patches along each side.</summary>
    public int GridSize => ImageSize / PatchSize;

    internal void Validate()
    {
        if (ImageSize <= 0 || PatchSize <= 0 || ImageSize % PatchSize != 0 || InChannels <= 0 || Width <= 0 || Depth < 0 || Heads <= 0 ||
            Width % Heads != 0 || !(MlpRatio > 0) || LayerNormEps <= 0 || DropPathRate is < 0 or >= 1 || PostNormEps is <= 0)
        {
            throw new ArgumentException($"Invalid EVA ViT configuration {this}: the image size must be a multiple of the patch size and the width of the heads.");
        }
    }
}

/// <summary>
/// The EVA vision transformer of LAVIS / BLIP-2 / MedBLIP, with its state-dict names: <c>patch_embed.proj</c>,
/// <c>cls_token</c>, <c>pos_embed</c>, <c>blocks.{i}.norm1</c>, <c>attn.qkv</c> (no bias), <c>attn.q_bias</c>,
/// <c>attn.v_bias</c>, <c>attn.proj</c>, <c>norm2</c>, <c>mlp.fc1</c>, <c>mlp.fc2</c>; no final norm (BLIP-2 applies
/// <c>ln_vision</c> outside, or inside when <see cref="EvaVitConfig.PostNormEps"/> is set). <c>forward(images)</c> returns
/// the tokens (B x (1 + N) x width), the CLS token first.
/// </summary>
public sealed class EvaVisionTransformer : Module<Tensor, Tensor>, INoWeightDecay
{
#pragma warning disable IDE1006, SA1300 // State-dict names follow LAVIS.
    private readonly PatchEmbed2d patch_embed;
    private readonly Parameter cls_token;
    private readonly Parameter pos_embed;
    private readonly ModuleList<TransformerLayer> blocks;
    private readonly LayerNorm? ln_vision;
#pragma warning restore IDE1006, SA1300

    /// <summary>Creates the model (LAVIS initialisation: normal std 0.02, zero biases, unless on <c>meta</c>).</summary>
    public EvaVisionTransformer(EvaVitConfig config, Device? device = null)
        : base(nameof(EvaVisionTransformer))
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
                QkvBias = QkvBias.QueryValue,
                NormFirst = true,
                LayerNormEps = config.LayerNormEps,
                DropPath = config.Depth > 1 ? config.DropPathRate * i / (config.Depth - 1) : 0,
            },
            device)).ToArray());
        ln_vision = config.PostNormEps is { } eps ? LayerNorm(config.Width, eps, device: device) : null;
        RegisterComponents();
        if (device is null || device.type != DeviceType.META)
        {
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
    public EvaVitConfig Config { get; }

    /// <summary>Tokens (B x (1 + N) x width) of (B x C x H x W) images (after <c>ln_vision</c> when the model has it).</summary>
    public override Tensor forward(Tensor images)
    {
        using var scope = NewDisposeScope();
        var x = patch_embed.forward(images);
        x = cat([cls_token.expand(x.shape[0], -1, -1), x], 1) + pos_embed;
        x = ForwardBlocks(x);
        return scope.MoveToOuter(ln_vision is null ? x : ln_vision.forward(x));
    }

    /// <summary>
    /// Runs only the transformer blocks (not <c>ln_vision</c>) on tokens embedded elsewhere (MedBLIP: a trained 3D patch embedding and 3D
    /// position embedding in front of the frozen 2D blocks). Gradients flow through to those tokens.
    /// </summary>
    public Tensor ForwardBlocks(Tensor tokens)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        using var scope = NewDisposeScope();
        var x = tokens;
        foreach (var block in blocks)
        {
            x = block.forward(x);
        }

        return scope.MoveToOuter(x);
    }

    /// <inheritdoc/>
    public IEnumerable<string> NoWeightDecayParameterNames() => NoWeightDecay.Compose(this, "cls_token", "pos_embed");
}
