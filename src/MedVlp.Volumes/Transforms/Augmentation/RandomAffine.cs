namespace MedVlp.Volumes.Transforms;

/// <summary>
/// A small random rotation, scaling and translation about the volume's centre, in physical space (so anisotropic voxels
/// rotate correctly), resampled onto a grid of the same shape. Output voxel v samples the input at <c>M v</c>, and the
/// output affine is <c>A_in M</c>: the affine stays true (the array content moves; the anatomy keeps its world position).
/// </summary>
/// <remarks>
/// An axis of extent 1 (a single slice, or a 2D image stored as a volume) does not move: the rotation is then only about
/// that axis (in the slice's plane), with no scaling or translation along it, since tilting a one-voxel-thick slice
/// would sample outside it and blank most of the image. The random draws are the same either way, so a seed gives the
/// same in-plane transform.
/// </remarks>
public sealed class RandomAffine : RandomTransform
{
    /// <summary>The largest rotation about each axis, in degrees (uniform in [-x, x]; default 10).</summary>
    public double MaxRotationDegrees { get; init; } = 10;

    /// <summary>The largest relative scaling (uniform factor in [1 - x, 1 + x] per axis; default 0.1).</summary>
    public double MaxScale { get; init; } = 0.1;

    /// <summary>The largest translation along each axis, in millimetres (default 0).</summary>
    public double MaxTranslationMm { get; init; }

    /// <summary>Trilinear (default) or nearest.</summary>
    public Interpolation Interpolation { get; init; } = Interpolation.Trilinear;

    /// <summary>The value of voxels that come from outside the input (default 0).</summary>
    public double FillValue { get; init; }

    /// <summary>Fill with the input's minimum instead of <see cref="FillValue"/>.</summary>
    public bool FillWithMinimum { get; init; }

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        ValidateRange("the rotation", 0, MaxRotationDegrees);
        ValidateRange("the scale", 0, MaxScale);
        ValidateRange("the translation", 0, MaxTranslationMm);
        if (MaxScale >= 1)
        {
            throw new ArgumentException($"{nameof(RandomAffine)}: MaxScale must be below 1, got {MaxScale}.");
        }
    }

    /// <inheritdoc />
    protected override Volume ApplyRandom(Volume volume, Random random)
    {
        var angles = new double[3];
        var scales = new double[3];
        var shifts = new double[3];
        for (var a = 0; a < 3; a++)
        {
            angles[a] = Uniform(random, -MaxRotationDegrees, MaxRotationDegrees) * Math.PI / 180;
        }

        for (var a = 0; a < 3; a++)
        {
            scales[a] = Uniform(random, 1 - MaxScale, 1 + MaxScale);
        }

        for (var a = 0; a < 3; a++)
        {
            shifts[a] = Uniform(random, -MaxTranslationMm, MaxTranslationMm);
        }

        int[] extents = [volume.Shape.X, volume.Shape.Y, volume.Shape.Z];
        for (var a = 0; a < 3; a++)
        {
            if (extents[a] == 1)
            {
                // The other two axes' rotations tilt axis a out of the slice.
                angles[(a + 1) % 3] = 0;
                angles[(a + 2) % 3] = 0;
                scales[a] = 1;
                shifts[a] = 0;
            }
        }

        var map = VoxelMapping(volume, angles, scales, shifts);
        var affine = volume.Affine * map;
        return Resampler.Resample(volume, volume.Shape, affine, new ResampleOptions { Interpolation = Interpolation, FillValue = FillValue, FillWithMinimum = FillWithMinimum });
    }

    /// <summary>The voxel-space mapping M (output index to input index) for rotations (radians, about i, j, k), scales and shifts (mm).</summary>
    internal static Affine VoxelMapping(Volume volume, double[] angles, double[] scales, double[] shiftsMm)
    {
        var spacing = volume.Affine.Zooms;
        var shape = volume.Shape;
        double[] centre = [(shape.X - 1) / 2.0, (shape.Y - 1) / 2.0, (shape.Z - 1) / 2.0];
        var rotation = Rotation(0, angles[0]) * Rotation(1, angles[1]) * Rotation(2, angles[2]);
        var scale = Diagonal(scales[0], scales[1], scales[2]);
        var toMm = Diagonal(spacing.X, spacing.Y, spacing.Z);
        var toVoxels = Diagonal(1 / spacing.X, 1 / spacing.Y, 1 / spacing.Z);
        var linear = toVoxels * rotation * scale * toMm;
        var c = Affine.FromRowMajor([1, 0, 0, centre[0], 0, 1, 0, centre[1], 0, 0, 1, centre[2], 0, 0, 0, 1]);
        var minusC = Affine.FromRowMajor([1, 0, 0, -centre[0], 0, 1, 0, -centre[1], 0, 0, 1, -centre[2], 0, 0, 0, 1]);
        var shift = Affine.FromRowMajor([1, 0, 0, shiftsMm[0] / spacing.X, 0, 1, 0, shiftsMm[1] / spacing.Y, 0, 0, 1, shiftsMm[2] / spacing.Z, 0, 0, 0, 1]);
        return shift * c * linear * minusC;
    }

    private static Affine Diagonal(double a, double b, double c) => Affine.FromRowMajor([a, 0, 0, 0, 0, b, 0, 0, 0, 0, c, 0, 0, 0, 0, 1]);

    private static Affine Rotation(int axis, double angle)
    {
        double cos = Math.Cos(angle), sin = Math.Sin(angle);
        return axis switch
        {
            0 => Affine.FromRowMajor([1, 0, 0, 0, 0, cos, -sin, 0, 0, sin, cos, 0, 0, 0, 0, 1]),
            1 => Affine.FromRowMajor([cos, 0, sin, 0, 0, 1, 0, 0, -sin, 0, cos, 0, 0, 0, 0, 1]),
            _ => Affine.FromRowMajor([cos, -sin, 0, 0, sin, cos, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]),
        };
    }
}
