using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace MedVlp.Modeling.Blocks;

/// <summary>
/// Patch embedding of 2D images (timm / EVA: <c>proj</c> = Conv2d with kernel = stride = patch):
/// (B x C x H x W) to (B x (H/p)(W/p) x width), row-major patches.
/// </summary>
public sealed class PatchEmbed2d : Module<Tensor, Tensor>, INoWeightDecay
{
#pragma warning disable IDE1006, SA1300 // State-dict names follow timm.
    private readonly Conv2d proj;
#pragma warning restore IDE1006, SA1300

    /// <summary>Creates the embedding.</summary>
    public PatchEmbed2d(int inChannels, int width, int patchSize, bool bias = true, Device? device = null)
        : base(nameof(PatchEmbed2d))
    {
        if (inChannels <= 0 || width <= 0 || patchSize <= 0)
        {
            throw new ArgumentException($"Patch embedding needs positive sizes, got {inChannels} channels, width {width}, patch {patchSize}.");
        }

        PatchSize = patchSize;
        proj = Conv2d(inChannels, width, patchSize, stride: patchSize, bias: bias, device: device);
        RegisterComponents();
    }

    /// <summary>Edge length of a patch.</summary>
    public int PatchSize { get; }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.Dimensions != 4 || x.shape[2] % PatchSize != 0 || x.shape[3] % PatchSize != 0)
        {
            throw new ArgumentException($"Expected (batch x channels x height x width) images with sides a multiple of {PatchSize}, got [{string.Join(", ", x.shape)}].", nameof(x));
        }

        using var scope = NewDisposeScope();
        return scope.MoveToOuter(proj.forward(x).flatten(2).transpose(1, 2));
    }

    /// <inheritdoc/>
    public IEnumerable<string> NoWeightDecayParameterNames() => NoWeightDecay.Compose(this);
}

/// <summary>
/// Patch embedding of volumes (MedBLIP: <c>proj</c> = Conv3d with kernel = stride = patch):
/// (B x C x D x H x W) to (B x (D/p)(H/p)(W/p) x width), row-major patches (the last axis fastest).
/// </summary>
public sealed class PatchEmbed3d : Module<Tensor, Tensor>, INoWeightDecay
{
#pragma warning disable IDE1006, SA1300 // State-dict names follow timm / MedBLIP.
    private readonly Conv3d proj;
#pragma warning restore IDE1006, SA1300

    /// <summary>Creates the embedding.</summary>
    public PatchEmbed3d(int inChannels, int width, int patchSize, bool bias = true, Device? device = null)
        : base(nameof(PatchEmbed3d))
    {
        if (inChannels <= 0 || width <= 0 || patchSize <= 0)
        {
            throw new ArgumentException($"Patch embedding needs positive sizes, got {inChannels} channels, width {width}, patch {patchSize}.");
        }

        PatchSize = patchSize;
        proj = Conv3d(inChannels, width, patchSize, stride: patchSize, bias: bias, device: device);
        RegisterComponents();
    }

    /// <summary>Edge length of a cubic patch.</summary>
    public int PatchSize { get; }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.Dimensions != 5 || x.shape[2] % PatchSize != 0 || x.shape[3] % PatchSize != 0 || x.shape[4] % PatchSize != 0)
        {
            throw new ArgumentException($"Expected (batch x channels x depth x height x width) volumes with sides a multiple of {PatchSize}, got [{string.Join(", ", x.shape)}].", nameof(x));
        }

        using var scope = NewDisposeScope();
        return scope.MoveToOuter(proj.forward(x).flatten(2).transpose(1, 2));
    }

    /// <inheritdoc/>
    public IEnumerable<string> NoWeightDecayParameterNames() => NoWeightDecay.Compose(this);
}
