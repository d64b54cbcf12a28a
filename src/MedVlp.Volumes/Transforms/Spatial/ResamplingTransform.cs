namespace MedVlp.Volumes.Transforms;

/// <summary>
/// A deterministic transform that resamples the volume onto a new voxel grid computed from the input's geometry
/// (<see cref="GetTargetGrid(Volume)"/>), with world-coordinate-correct interpolation (<see cref="Resampler"/>).
/// The TorchSharp path of <c>MedVlp</c> evaluates any such transform on a device from the same grid.
/// </summary>
public abstract class ResamplingTransform : VolumeTransform
{
    /// <summary>Trilinear (default) or nearest-neighbour (for label maps).</summary>
    public Interpolation Interpolation { get; init; } = Interpolation.Trilinear;

    /// <summary>The value of output voxels that fall outside the input (default 0).</summary>
    public double FillValue { get; init; }

    /// <summary>When true, outside voxels get the input's minimum instead of <see cref="FillValue"/>.</summary>
    public bool FillWithMinimum { get; init; }

    /// <summary>The output grid for <paramref name="volume"/>: its shape and its true voxel-to-world affine.</summary>
    public (VolumeShape Shape, Affine Affine) GetTargetGrid(Volume volume)
    {
        ArgumentNullException.ThrowIfNull(volume);
        return GetTargetGrid(volume.Shape, volume.Affine);
    }

    /// <summary>The output grid for an input grid of <paramref name="shape"/> and <paramref name="affine"/>.</summary>
    public abstract (VolumeShape Shape, Affine Affine) GetTargetGrid(VolumeShape shape, Affine affine);

    /// <summary>The resampling options these properties describe.</summary>
    protected ResampleOptions Options => new() { Interpolation = Interpolation, FillValue = FillValue, FillWithMinimum = FillWithMinimum };

    /// <inheritdoc />
    protected override Volume ApplyCore(Volume volume, Random random)
    {
        var (shape, affine) = GetTargetGrid(volume);
        return Resampler.Resample(volume, shape, affine, Options);
    }

    /// <summary>The affine of a grid whose voxel v sits at input continuous index <c>scale * v + shift</c> (per axis).</summary>
    protected static Affine ScaledGrid(Affine input, ReadOnlySpan<double> scale, ReadOnlySpan<double> shift)
    {
        ArgumentNullException.ThrowIfNull(input);
        var m = Affine.FromRowMajor([scale[0], 0, 0, shift[0], 0, scale[1], 0, shift[1], 0, 0, scale[2], shift[2], 0, 0, 0, 1]);
        return input * m;
    }
}
