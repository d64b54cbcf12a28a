using MedVlp.Modeling.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace MedVlp.Modeling.Backbones;

/// <summary>Sizes of <see cref="PrimusEncoder"/> (Primus-M: width 864, depth 16, 12 heads, patch 8, SwiGLU 8/3).</summary>
public sealed record PrimusEncoderOptions
{
    /// <summary>Input channels.</summary>
    public int InChannels { get; init; } = 1;

    /// <summary>Edge of the cubic patch (8).</summary>
    public int PatchSize { get; init; } = 8;

    /// <summary>Edge of the cubic training crop the absolute position embedding (if any) is sized for (192).</summary>
    public int InputSize { get; init; } = 192;

    /// <summary>Token width (Primus-M: 864).</summary>
    public int Width { get; init; } = 864;

    /// <summary>EVA blocks (Primus-M: 16).</summary>
    public int Depth { get; init; } = 16;

    /// <summary>Attention heads (Primus-M: 12). The head size must be a multiple of 6 for the 3-axis rotary embedding.</summary>
    public int Heads { get; init; } = 12;

    /// <summary>SwiGLU hidden size as a multiple of the width (Primus: 8/3).</summary>
    public double MlpRatio { get; init; } = 8.0 / 3;

    /// <summary>LayerScale init (Primus-M: 0.1); null for none.</summary>
    public double? LayerScaleInit { get; init; } = 0.1;

    /// <summary>Learned absolute position embedding <c>eva.pos_embed</c> next to the rotary one (Primus default: true; COLIPRI: false).</summary>
    public bool AbsolutePositionEmbedding { get; init; }

    /// <summary>Rotary frequency base (10000).</summary>
    public double RotaryTheta { get; init; } = 10000;

    /// <summary>Drop-path rate of the last block (linearly increasing from 0).</summary>
    public double DropPath { get; init; }

    /// <summary>
    /// Output channels of an optional convolutional stem before the patch embedding (null or empty: none, as Primus and
    /// COLIPRI). A MedVlp option for small models trained from scratch (a convolutional stem, as in Xiao et al. 2021,
    /// "Early convolutions help transformers see better"): each entry is a 3 x 3 x 3 Conv3d of stride 2 and padding 1
    /// followed by an exact GELU (state-dict names <c>stem.{2i}</c>; <c>stem.{3i}</c> with <see cref="StemBatchNorm"/>), and the patch embedding then cuts the stem's output
    /// into patches of <see cref="PatchSize"/> / 2^stages, so the token grid stays <see cref="InputSize"/> /
    /// <see cref="PatchSize"/>. The stem's receptive field reaches a few voxels into neighbouring patches, so masked image
    /// modelling sees a masked patch's rim through its neighbours' tokens.
    /// </summary>
    public IReadOnlyList<int>? StemChannels { get; init; }

    /// <summary>
    /// A BatchNorm3d (eps 1e-5, momentum 0.1, as PyTorch) between each stem convolution and its GELU (default false).
    /// A MedVlp option of the <c>tiny</c> size, as in ResNet stems; the state-dict names become <c>stem.{3i}</c> (convolution),
    /// <c>stem.{3i+1}</c> (norm, with its running statistics) and <c>stem.{3i+2}</c> (GELU), as <c>nn.Sequential</c> numbers
    /// them. The norm uses batch statistics in training mode and its running ones in evaluation mode, so a frozen or
    /// evaluated encoder gives the same embedding whatever the batch. Ignored without a stem.
    /// </summary>
    public bool StemBatchNorm { get; init; }

    /// <summary>Stride-2 stages of the convolutional stem (0 without one).</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public int StemStages => StemChannels?.Count ?? 0;

    /// <summary>Edge of the patch the patch embedding cuts from its input (the stem's output): <see cref="PatchSize"/> / 2^<see cref="StemStages"/>.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public int EmbeddingPatchSize => PatchSize >> StemStages;

    /// <summary>Tokens along each axis of the training crop.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public int GridSize => InputSize / PatchSize;

    /// <summary>SwiGLU hidden size.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public int MlpHidden => (int)(Width * MlpRatio);

    internal void Validate()
    {
        if (InChannels <= 0 || PatchSize <= 0 || InputSize <= 0 || InputSize % PatchSize != 0 || Width <= 0 || Depth < 0 || Heads <= 0 ||
            Width % Heads != 0 || (Width / Heads) % 6 != 0 || !(MlpRatio > 0) || DropPath is < 0 or >= 1)
        {
            throw new ArgumentException(
                $"Invalid Primus encoder {this}: the input must be a multiple of the patch, the width a multiple of the heads, and the head size a multiple of 6 (three rotary axes of channel pairs).");
        }

        if (StemChannels is { Count: > 0 } stem && (stem.Count > 8 || stem.Any(c => c <= 0) || PatchSize % (1 << stem.Count) != 0))
        {
            throw new ArgumentException(
                $"Invalid Primus encoder stem [{string.Join(", ", stem)}]: expected at most 8 stages of positive channels, each halving the volume, with the patch {PatchSize} a multiple of 2^{stem.Count}.");
        }
    }
}

/// <summary>
/// The Primus 3D ViT encoder (dynamic_network_architectures' <c>Primus</c> without its segmentation decoder), with its
/// state-dict names: <c>down_projection.proj</c> (Conv3d patch embedding), optional <c>eva.pos_embed</c>,
/// <c>eva.blocks.{i}</c> (<see cref="EvaBlock"/>: timm EVA blocks with 3D rotary position embedding, SwiGLU, LayerScale)
/// and <c>eva.norm</c>; <c>mask_token</c> replaces masked tokens for masked image modelling. Tokens are ordered with
/// the last volume axis fastest, as <c>rearrange("b c w h d -> b (w h d) c")</c>.
/// </summary>
public sealed class PrimusEncoder : Module<Tensor, Tensor>, INoWeightDecay
{
#pragma warning disable IDE1006, SA1300 // State-dict names follow dynamic_network_architectures.
    private readonly Sequential? stem;
    private readonly PatchEmbed3d down_projection;
    private readonly PrimusEva eva;
    private readonly Parameter mask_token;
#pragma warning restore IDE1006, SA1300
    private readonly RotaryEmbedding rotary;

    /// <summary>Creates the encoder with freshly initialised weights.</summary>
    public PrimusEncoder(PrimusEncoderOptions options, Device? device = null)
        : base(nameof(PrimusEncoder))
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Options = options;
        var channels = options.InChannels;
        if (options.StemChannels is { Count: > 0 } stemChannels)
        {
            var layers = new List<(string, Module<Tensor, Tensor>)>();
            for (var i = 0; i < stemChannels.Count; i++)
            {
                // Each layer is named by its position, as nn.Sequential numbers them.
                layers.Add(($"{layers.Count}", Conv3d(channels, stemChannels[i], 3, stride: 2, padding: 1, device: device)));
                if (options.StemBatchNorm)
                {
                    layers.Add(($"{layers.Count}", BatchNorm3d(stemChannels[i], device: device)));
                }

                layers.Add(($"{layers.Count}", GELU()));
                channels = stemChannels[i];
            }

            stem = Sequential(layers);
        }

        down_projection = new PatchEmbed3d(channels, options.Width, options.EmbeddingPatchSize, device: device);
        eva = new PrimusEva(options, device);
        mask_token = new Parameter(zeros([1, 1, options.Width], device: device));
        rotary = new RotaryEmbedding(options.Width / options.Heads, 3, options.RotaryTheta);
        RegisterComponents();
        if (device is null || device.type != DeviceType.META)
        {
            Initialize();
        }
    }

    /// <summary>The sizes.</summary>
    public PrimusEncoderOptions Options { get; }

    /// <summary>Token width.</summary>
    public int Width => Options.Width;

    /// <inheritdoc/>
    public override Tensor forward(Tensor x) => forward(x, null);

    /// <summary>Encodes (B x C x D x H x W) volumes (sides multiples of the patch) into normalised tokens (B x N x width).</summary>
    /// <param name="x">The volumes.</param>
    /// <param name="mask">Optional (B x N) booleans: true tokens are replaced by <c>mask_token</c> before the blocks.</param>
    public Tensor forward(Tensor x, Tensor? mask)
    {
        ArgumentNullException.ThrowIfNull(x);
        using var scope = NewDisposeScope();
        var grid = Grid(x);
        var tokens = down_projection.forward(stem is null ? x : stem.forward(x));
        if (mask is not null)
        {
            tokens = where(mask.to(ScalarType.Bool).unsqueeze(-1), mask_token.to(tokens.dtype).expand_as(tokens), tokens);
        }

        using var tables = rotary.Tables(grid, 0, x.device);
        return scope.MoveToOuter(eva.forward(tokens, grid, tables));
    }

    /// <summary>The token grid (D/p, H/p, W/p) of an input.</summary>
    /// <exception cref="ArgumentException">The input is not 5-D or a side is not a multiple of the patch.</exception>
    public long[] Grid(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        var p = Options.PatchSize;
        if (x.Dimensions != 5 || x.shape[1] != Options.InChannels || x.shape[2] % p != 0 || x.shape[3] % p != 0 || x.shape[4] % p != 0)
        {
            throw new ArgumentException($"Expected (batch x {Options.InChannels} x D x H x W) volumes with sides a multiple of {p}, got [{string.Join(", ", x.shape)}].", nameof(x));
        }

        return [x.shape[2] / p, x.shape[3] / p, x.shape[4] / p];
    }

    /// <inheritdoc/>
    public IEnumerable<string> NoWeightDecayParameterNames() => NoWeightDecay.Compose(this, "mask_token");

    private void Initialize()
    {
        using var noGrad = no_grad();
        foreach (var (name, parameter) in named_parameters())
        {
            if (name.EndsWith(".weight", StringComparison.Ordinal) && parameter.Dimensions == 2)
            {
                init.trunc_normal_(parameter, 0, 0.02, -0.04, 0.04);
            }
            else if (name.StartsWith("eva.blocks.", StringComparison.Ordinal) && name.EndsWith(".bias", StringComparison.Ordinal) && !name.Contains("norm", StringComparison.Ordinal))
            {
                parameter.zero_();
            }
        }

        init.trunc_normal_(mask_token, 0, 0.02, -0.04, 0.04);
        eva.RescaleResidualProjections();
    }

    /// <summary>The <c>eva</c> sub-module: optional absolute positions, the blocks and the final norm.</summary>
    private sealed class PrimusEva : Module<Tensor, Tensor>
    {
#pragma warning disable IDE1006, SA1300 // State-dict names follow dynamic_network_architectures.
        private readonly Parameter? pos_embed;
        private readonly ModuleList<EvaBlock> blocks;
        private readonly LayerNorm norm;
#pragma warning restore IDE1006, SA1300
        private readonly long[] referenceGrid;

        public PrimusEva(PrimusEncoderOptions options, Device? device)
            : base("eva")
        {
            var g = options.GridSize;
            referenceGrid = [g, g, g];
            if (options.AbsolutePositionEmbedding)
            {
                pos_embed = new Parameter(zeros([1, (long)g * g * g, options.Width], device: device));
            }

            blocks = new ModuleList<EvaBlock>();
            for (var i = 0; i < options.Depth; i++)
            {
                blocks.Add(new EvaBlock(
                    new EvaBlockOptions
                    {
                        Width = options.Width,
                        Heads = options.Heads,
                        MlpHidden = options.MlpHidden,
                        LayerScaleInit = options.LayerScaleInit,
                        DropPath = options.Depth > 1 ? options.DropPath * i / (options.Depth - 1) : 0,
                    },
                    device));
            }

            norm = LayerNorm(options.Width, 1e-5, device: device);
            RegisterComponents();
            if (pos_embed is not null && (device is null || device.type != DeviceType.META))
            {
                using var noGrad = no_grad();
                init.trunc_normal_(pos_embed, 0, 0.02, -0.04, 0.04);
            }
        }

        public override Tensor forward(Tensor x) => throw new NotSupportedException("Call forward(tokens, grid, rotary).");

        public Tensor forward(Tensor tokens, long[] grid, RotaryTables rotary)
        {
            using var scope = NewDisposeScope();
            var x = tokens;
            if (pos_embed is not null)
            {
                if (!grid.SequenceEqual(referenceGrid))
                {
                    throw new ArgumentException($"The absolute position embedding is sized for a {string.Join("x", referenceGrid)} token grid; got {string.Join("x", grid)}. Use sliding-window encoding for other sizes.");
                }

                x = x + pos_embed;
            }

            foreach (var block in blocks)
            {
                x = block.forward(x, null, rotary);
            }

            return scope.MoveToOuter(norm.forward(x));
        }

        /// <summary>timm's fix_init_weight: divide each block's output projections by sqrt(2 * (layer + 1)).</summary>
        public void RescaleResidualProjections()
        {
            for (var i = 0; i < blocks.Count; i++)
            {
                var factor = Math.Sqrt(2.0 * (i + 1));
                foreach (var (name, parameter) in blocks[i].named_parameters())
                {
                    if (name is "attn.proj.weight" or "mlp.fc2.weight")
                    {
                        parameter.div_(factor);
                    }
                }
            }
        }
    }
}
