namespace MedVlp.Volumes.Transforms;

/// <summary>
/// Resamples to a voxel spacing in millimetres, keeping the axis directions and the field of view, as TorchIO's
/// <c>Resample</c> (SimpleITK) does: the output has <c>ceil(n * old / new)</c> voxels per axis (singleton axes stay 1) and
/// its first voxel centre sits at input index <c>0.5 * (new / old - 1)</c>, so both grids share the outer voxel corner.
/// </summary>
public sealed class ResampleToSpacing : ResamplingTransform
{
    /// <summary>The target voxel size in millimetres along i, j, k (for example 2, 2, 2).</summary>
    public Spacing Spacing { get; init; } = Spacing.Isotropic(1);

    /// <summary>Creates the transform for a spacing (default 1 mm isotropic).</summary>
    public ResampleToSpacing()
    {
    }

    /// <summary>Creates the transform for an isotropic spacing.</summary>
    /// <param name="millimetres">The voxel size along every axis.</param>
    public ResampleToSpacing(double millimetres) => Spacing = Spacing.Isotropic(millimetres);

    /// <inheritdoc />
    public override void Validate()
    {
        for (var a = 0; a < 3; a++)
        {
            if (!(Spacing[a] > 0) || !double.IsFinite(Spacing[a]))
            {
                throw new ArgumentException($"{nameof(ResampleToSpacing)}: the spacing must be positive and finite, got {Spacing}.");
            }
        }
    }

    /// <inheritdoc />
    public override (VolumeShape Shape, Affine Affine) GetTargetGrid(VolumeShape shape, Affine affine)
    {
        ArgumentNullException.ThrowIfNull(affine);
        var old = affine.Zooms;
        var extent = new int[3];
        var counts = new double[3];
        for (var a = 0; a < 3; a++)
        {
            counts[a] = shape[a] == 1 ? 1 : Math.Ceiling((shape[a] * old[a] / Spacing[a]) - 1e-6);
        }

        ResourceLimits.Default.CheckPreprocessedSize(counts[0], counts[1], counts[2], 1, nameof(ResampleToSpacing), null);
        var scale = new double[3];
        var shift = new double[3];
        for (var a = 0; a < 3; a++)
        {
            var n = shape[a];
            if (!(old[a] > 0))
            {
                throw new ArgumentException($"{nameof(ResampleToSpacing)}: the volume's affine has a zero-length axis {a}.", nameof(affine));
            }

            // ceil as TorchIO, but a count within 1e-6 voxel of an integer is that integer: spacings read from files carry
            // float noise (0.859375 stored as 0.85937500001) that must not add a voxel
            extent[a] = n == 1 ? 1 : checked((int)Math.Ceiling((n * old[a] / Spacing[a]) - 1e-6));
            scale[a] = Spacing[a] / old[a];
            shift[a] = 0.5 * (scale[a] - 1);
        }

        return (new VolumeShape(extent[0], extent[1], extent[2]), ScaledGrid(affine, scale, shift));
    }
}
