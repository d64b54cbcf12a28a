using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Losses;

/// <summary>Inputs of <see cref="MaskedPatchReconstructionLoss"/>.</summary>
/// <param name="Prediction">Predicted voxels per patch, B x N x P.</param>
/// <param name="Target">The input's voxels per patch (patchified), B x N x P.</param>
/// <param name="Mask">B x N booleans: true where the patch was masked (only those count).</param>
public sealed record MaskedPatchInput(Tensor Prediction, Tensor Target, Tensor Mask);

/// <summary>Options of <see cref="MaskedPatchReconstructionLoss"/>.</summary>
public sealed class MaskedPatchReconstructionOptions
{
    /// <summary>Normalise each target patch to zero mean and unit variance first (MAE's <c>norm_pix_loss</c>; default false).</summary>
    public bool NormalizeTargetPatches { get; init; }

    /// <summary>Use the mean absolute error instead of the mean squared error (default false: MSE, as MAE).</summary>
    public bool L1 { get; init; }
}

/// <summary>
/// Masked image modelling loss, MAE-style: the error between predicted and true voxels of the masked patches only,
/// averaged over masked patches and voxels (<c>sum_{b,n} m_bn * mean_p (x - y)^2 / sum m</c>).
/// </summary>
public sealed class MaskedPatchReconstructionLoss : VlpLoss<MaskedPatchInput>
{
    private readonly MaskedPatchReconstructionOptions options;

    /// <summary>Creates the loss.</summary>
    public MaskedPatchReconstructionLoss(MaskedPatchReconstructionOptions? options = null)
        : base(nameof(MaskedPatchReconstructionLoss))
    {
        this.options = options ?? new MaskedPatchReconstructionOptions();
    }

    /// <inheritdoc/>
    protected override LossOutput ComputeLoss(MaskedPatchInput input)
    {
        Check.Rank(input.Prediction, 3, nameof(input.Prediction), "B x N x P");
        Check.SameShape(input.Prediction, nameof(input.Prediction), input.Target, nameof(input.Target));
        Check.Rank(input.Mask, 2, nameof(input.Mask), "B x N");
        if (input.Mask.shape[0] != input.Prediction.shape[0] || input.Mask.shape[1] != input.Prediction.shape[1])
        {
            throw new ArgumentException($"Mask [{string.Join(", ", input.Mask.shape)}] does not match the patches [{string.Join(", ", input.Prediction.shape)}].");
        }

        var target = input.Target.detach();
        if (options.NormalizeTargetPatches)
        {
            var mean = target.mean([-1], keepdim: true);
            var variance = target.var(-1, keepdim: true);
            target = (target - mean) / (variance + 1e-6).sqrt();
        }

        var diff = input.Prediction - target;
        var perPatch = (options.L1 ? diff.abs() : diff.square()).mean([-1]);
        var mask = input.Mask.to(perPatch.dtype);
        var loss = (perPatch * mask).sum() / mask.sum().clamp_min(1);
        return new LossOutput(loss, [new("masked_reconstruction", loss)]);
    }
}
