namespace MedVlp.Volumes.Transforms;

/// <summary>
/// Resamples to a voxel shape, covering the same field of view. With <see cref="AlignCorners"/> false (default, TorchIO's
/// <c>Resize</c> and PyTorch's <c>align_corners=False</c>) the grids share their outer voxel corners; with it true
/// (PyTorch's <c>align_corners=True</c>) they share the centres of their corner voxels. The affine changes accordingly.
/// </summary>
public sealed class ResampleToShape : ResamplingTransform
{
    /// <summary>The output shape.</summary>
    public VolumeShape Shape { get; init; } = new(1, 1, 1);

    /// <summary>True to map corner voxel centres onto each other (PyTorch <c>align_corners=True</c>).</summary>
    public bool AlignCorners { get; init; }

    /// <inheritdoc />
    public override void Validate() => ResourceLimits.CheckFixedSize(Shape, nameof(ResampleToShape));

    /// <inheritdoc />
    public override (VolumeShape Shape, Affine Affine) GetTargetGrid(VolumeShape shape, Affine affine) =>
        (Shape, GridFor(affine, shape, Shape, AlignCorners));

    /// <summary>The affine of a <paramref name="target"/>-shaped grid over the field of view of a <paramref name="source"/>-shaped one.</summary>
    internal static Affine GridFor(Affine affine, VolumeShape source, VolumeShape target, bool alignCorners)
    {
        var scale = new double[3];
        var shift = new double[3];
        for (var a = 0; a < 3; a++)
        {
            if (alignCorners)
            {
                // PyTorch: out index v reads in index v * (n_in - 1) / (n_out - 1); a single output voxel reads index 0.
                scale[a] = target[a] > 1 ? (source[a] - 1) / (double)(target[a] - 1) : 0;
                shift[a] = 0;
            }
            else
            {
                scale[a] = source[a] / (double)target[a];
                shift[a] = 0.5 * (scale[a] - 1);
            }
        }

        return ScaledGrid(affine, scale, shift);
    }
}
