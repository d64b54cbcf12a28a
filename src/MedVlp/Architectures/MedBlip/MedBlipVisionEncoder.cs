using MedVlp.Modeling.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace MedVlp.Architectures.MedBlip;

/// <summary>
/// MedBLIP's vision encoder (released <c>medblip/eva_vit.py</c>, names kept): <c>patch_embed_3d.proj</c> (Conv3d, kernel
/// and stride = patch), <c>cls_token</c>, <c>pos_embed_3d</c> (1 x (1 + patches) x width) and the EVA ViT <c>blocks</c>
/// (<c>qkv</c> without bias + <c>q_bias</c> / <c>v_bias</c>, pre-norm, exact GELU), no final norm. As released, only the
/// parameters whose name holds <c>3d</c> train: <c>cls_token</c> and the blocks are frozen (<c>requires_grad = false</c>,
/// kept in <c>eval()</c>); gradients still flow through the blocks into the 3D embedding. A 2D EVA checkpoint's
/// <c>blocks.*</c> and <c>cls_token</c> load; its <c>patch_embed</c> / <c>pos_embed</c> have no place here.
/// </summary>
public sealed class MedBlipVisionEncoder : Module<Tensor, Tensor>, INoWeightDecay
{
#pragma warning disable IDE1006, SA1300 // State-dict names follow the released MedBLIP.
    private readonly PatchEmbed3d patch_embed_3d;
    private readonly Parameter cls_token;
    private readonly Parameter pos_embed_3d;
    private readonly ModuleList<TransformerLayer> blocks;
#pragma warning restore IDE1006, SA1300

    /// <summary>Creates the encoder from the vision sizes of <paramref name="config"/> (normal std 0.02 init unless on <c>meta</c>).</summary>
    public MedBlipVisionEncoder(MedBlipConfig config, Device? device = null)
        : base(nameof(MedBlipVisionEncoder))
    {
        ArgumentNullException.ThrowIfNull(config);
        Config = config;
        patch_embed_3d = new PatchEmbed3d(1, config.VisionWidth, config.PatchSize, device: device);
        cls_token = new Parameter(zeros([1, 1, config.VisionWidth], device: device));
        pos_embed_3d = new Parameter(zeros([1, config.ImageTokens, config.VisionWidth], device: device));
        blocks = new ModuleList<TransformerLayer>(Enumerable.Range(0, config.VisionDepth).Select(_ => new TransformerLayer(
            new TransformerLayerOptions
            {
                Width = config.VisionWidth,
                Heads = config.VisionHeads,
                MlpHidden = (int)(config.VisionWidth * config.VisionMlpRatio),
                FeedForward = FeedForwardKind.Gelu,
                QkvBias = QkvBias.QueryValue,
                NormFirst = true,
                LayerNormEps = 1e-6,
            },
            device)).ToArray());
        RegisterComponents();
        if (device is null || device.type != DeviceType.META)
        {
            using var noGrad = no_grad();
            foreach (var (_, m) in blocks.named_modules())
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
            init.normal_(pos_embed_3d, 0, 0.02);
        }

        FreezePretrained();
    }

    /// <summary>The sizes.</summary>
    public MedBlipConfig Config { get; }

    /// <summary>Image tokens (B x (1 + patches) x width), CLS first, of (B x 1 x D x H x W) volumes of the configured size.</summary>
    public override Tensor forward(Tensor volumes)
    {
        ArgumentNullException.ThrowIfNull(volumes);
        var s = Config.InputSize;
        if (volumes.Dimensions != 5 || volumes.shape[1] != 1 || volumes.shape[2] != s || volumes.shape[3] != s || volumes.shape[4] != s)
        {
            throw new ArgumentException($"Expected (batch x 1 x {s} x {s} x {s}) volumes, got [{string.Join(", ", volumes.shape)}].", nameof(volumes));
        }

        using var scope = NewDisposeScope();
        var x = patch_embed_3d.forward(volumes);
        x = cat([cls_token.expand(x.shape[0], -1, -1), x], 1) + pos_embed_3d;
        x = x.to(BlocksDtype);
        foreach (var block in blocks)
        {
            x = block.forward(x);
        }

        return scope.MoveToOuter(x.to(ScalarType.Float32));
    }

    /// <summary>The dtype the EVA blocks are held in (float32 unless <see cref="SetBlocksDtype"/> changed it).</summary>
    public ScalarType BlocksDtype => blocks.Count == 0 ? ScalarType.Float32 : blocks[0].parameters().First().dtype;

    /// <summary>
    /// Holds the frozen EVA blocks in <paramref name="dtype"/> (float32, float16 or bfloat16, as the released code holds EVA
    /// in fp16): the tokens are cast to it before the blocks and back to float32 after them, so the trainable 3D embedding
    /// stays float32 and its gradients flow through the cast.
    /// </summary>
    public void SetBlocksDtype(ScalarType dtype)
    {
        if (dtype is not (ScalarType.Float32 or ScalarType.Float16 or ScalarType.BFloat16))
        {
            throw new ArgumentException($"The frozen EVA blocks can be held in float32, float16 or bfloat16, not {dtype}.", nameof(dtype));
        }

        blocks.to(dtype);
    }

    /// <summary>Freezes what the released code freezes (every parameter without <c>3d</c> in its name).</summary>
    public void FreezePretrained()
    {
        cls_token.requires_grad = false;
        foreach (var p in blocks.parameters())
        {
            p.requires_grad = false;
        }

        blocks.eval();
    }

    /// <summary>Sets the training mode, keeping the frozen blocks in evaluation mode.</summary>
    public override void train(bool train = true)
    {
        base.train(train);
        if (blocks.parameters().All(p => !p.requires_grad))
        {
            blocks.eval();
        }
    }

    /// <inheritdoc/>
    public IEnumerable<string> NoWeightDecayParameterNames() => NoWeightDecay.Compose(this, "cls_token", "pos_embed_3d");
}
