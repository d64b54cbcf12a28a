using MedVlp.Volumes;

namespace MedVlp.Synthetic;

/// <summary>Options of <see cref="SyntheticBrainDataset"/>: the grid the phantoms are drawn on and how much nuisance they carry.</summary>
public sealed class SyntheticBrainOptions
{
    /// <summary>The voxel grid of every volume (i = left-right, j = posterior-anterior, k = inferior-superior). Default 56 x 64 x 56.</summary>
    public VolumeShape Shape { get; init; } = new(56, 64, 56);

    /// <summary>Isotropic voxel size in millimetres. Default 3 mm (a 168 x 192 x 168 mm field of view).</summary>
    public double VoxelSizeMm { get; init; } = 3.0;

    /// <summary>Probability that a subject has focal white-matter lesions. Default 0.3.</summary>
    public double LesionProbability { get; init; } = 0.3;

    /// <summary>Largest random shift of the head centre, in millimetres along each axis. Default 6.</summary>
    public double MaxShiftMm { get; init; } = 6;

    /// <summary>Largest random head rotation (yaw and pitch), in degrees. Default 8.</summary>
    public double MaxRotationDegrees { get; init; } = 8;

    /// <summary>Relative spread of head size (0.1 = sizes from 0.9 to 1.1 of the mean). Default 0.1.</summary>
    public double HeadSizeSpread { get; init; } = 0.1;

    /// <summary>Strength of the smooth multiplicative bias field (0.2 = up to +-20 %). Default 0.2.</summary>
    public double BiasFieldStrength { get; init; } = 0.2;

    /// <summary>Range of Rician noise standard deviation relative to white-matter intensity. Default 0.015 to 0.04.</summary>
    public (double Min, double Max) NoiseLevel { get; init; } = (0.015, 0.04);

    /// <summary>How much the anatomy of one subject deviates from its class mean, in units of the distance between
    /// neighbouring classes. Default 0.12; larger values make the classes overlap.</summary>
    public double SeverityJitter { get; init; } = 0.12;

    internal void Validate()
    {
        Shape.Validate();
        if (!(VoxelSizeMm > 0) || !(LesionProbability is >= 0 and <= 1) || MaxShiftMm < 0 || MaxRotationDegrees < 0 ||
            HeadSizeSpread is < 0 or >= 0.5 || BiasFieldStrength is < 0 or >= 0.9 || NoiseLevel.Min < 0 || NoiseLevel.Max < NoiseLevel.Min ||
            SeverityJitter < 0)
        {
            throw new ArgumentException("Synthetic brain options are out of range: voxel size must be positive, probabilities in [0, 1], spreads non-negative.");
        }
    }
}
