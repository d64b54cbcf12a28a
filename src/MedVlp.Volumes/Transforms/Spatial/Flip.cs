namespace MedVlp.Volumes.Transforms;

/// <summary>
/// Reverses the voxel order along the chosen axes. The affine is updated so every voxel keeps its world position (the
/// anatomy does not move in world space; only the array does, which is what a network sees).
/// </summary>
public sealed class Flip : VolumeTransform
{
    /// <summary>Flip along i.</summary>
    public bool I { get; init; }

    /// <summary>Flip along j.</summary>
    public bool J { get; init; }

    /// <summary>Flip along k.</summary>
    public bool K { get; init; }

    /// <inheritdoc />
    protected override Volume ApplyCore(Volume volume, Random random) => Apply(volume, I, J, K);

    internal static Volume Apply(Volume volume, bool i, bool j, bool k) =>
        Reorientation.Apply(volume, [(0, i ? -1 : 1), (1, j ? -1 : 1), (2, k ? -1 : 1)]);
}
