namespace MedVlp.Synthetic;

/// <summary>How a <see cref="SyntheticChestDataset"/> volume is stored on disk: the direction of its voxel axes.</summary>
public enum ChestStorageOrientation
{
    /// <summary>Each case draws LPS or RAS (so readers and the <c>colipri</c> preset's reorientation are exercised).</summary>
    Random,

    /// <summary>DICOM's patient axes: i towards the patient's left, j posterior, k superior.</summary>
    Lps,

    /// <summary>NIfTI's RAS+: i towards the right, j anterior, k superior.</summary>
    Ras,
}

/// <summary>Grid, prevalence and nuisance options of <see cref="SyntheticChestDataset"/>.</summary>
public sealed class SyntheticChestOptions
{
    /// <summary>Field of view across (left-right and anterior-posterior), in mm (default 360, a typical chest CT).</summary>
    public double FieldOfViewMm { get; init; } = 360;

    /// <summary>Length covered along the body axis, in mm (default 300: lung apices to the upper abdomen).</summary>
    public double LengthMm { get; init; } = 300;

    /// <summary>In-plane voxel spacing range in mm (default 2.6 to 3.0: a CT downsampled for training; clinical scans are 0.6-0.9).</summary>
    public (double Min, double Max) InPlaneSpacingMm { get; init; } = (2.6, 3.0);

    /// <summary>Slice spacing range in mm (default 3 to 5, thicker than in-plane as in most chest CTs).</summary>
    public (double Min, double Max) SliceSpacingMm { get; init; } = (3.0, 5.0);

    /// <summary>The storage orientation (default <see cref="ChestStorageOrientation.Random"/>).</summary>
    public ChestStorageOrientation Orientation { get; init; } = ChestStorageOrientation.Random;

    /// <summary>Probability of each finding, independently (default 0.4).</summary>
    public double Prevalence { get; init; } = 0.4;

    /// <summary>Standard deviation range of the Gaussian image noise, in HU (default 8 to 20).</summary>
    public (double Min, double Max) NoiseHu { get; init; } = (8, 20);

    /// <summary>Probability that a report states an absent finding explicitly ("No pleural effusion.") (default 0.6).</summary>
    public double NegationProbability { get; init; } = 0.6;

    internal void Validate()
    {
        if (!(FieldOfViewMm >= 250 && FieldOfViewMm <= 600) || !(LengthMm >= 100 && LengthMm <= 600))
        {
            throw new ArgumentException($"Chest phantom field of view {FieldOfViewMm} mm and length {LengthMm} mm must lie in [250, 600] and [100, 600] mm.");
        }

        if (!(InPlaneSpacingMm.Min >= 0.5 && InPlaneSpacingMm.Max >= InPlaneSpacingMm.Min && InPlaneSpacingMm.Max <= 10) ||
            !(SliceSpacingMm.Min >= 0.5 && SliceSpacingMm.Max >= SliceSpacingMm.Min && SliceSpacingMm.Max <= 10))
        {
            throw new ArgumentException($"Chest phantom spacings {InPlaneSpacingMm} / {SliceSpacingMm} mm must be ranges within [0.5, 10] mm.");
        }

        if (FieldOfViewMm / InPlaneSpacingMm.Min * (FieldOfViewMm / InPlaneSpacingMm.Min) * (LengthMm / SliceSpacingMm.Min) > 64e6)
        {
            throw new ArgumentException("Chest phantom grid over 64 million voxels: use a coarser spacing.");
        }

        if (Prevalence is < 0 or > 1 || NegationProbability is < 0 or > 1 || !(NoiseHu.Min >= 0 && NoiseHu.Max >= NoiseHu.Min))
        {
            throw new ArgumentException($"Chest phantom prevalence {Prevalence} and negation probability {NegationProbability} must lie in [0, 1], noise {NoiseHu} must be a non-negative range.");
        }
    }
}
