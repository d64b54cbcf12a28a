namespace MedVlp.Volumes.Transforms;

/// <summary>A voxel position or displacement (i, j, k); components may be negative.</summary>
/// <param name="X">Along i.</param>
/// <param name="Y">Along j.</param>
/// <param name="Z">Along k.</param>
public readonly record struct VoxelOffset(int X, int Y, int Z)
{
    /// <summary>The component along axis 0, 1 or 2.</summary>
    public int this[int axis] => axis switch
    {
        0 => X,
        1 => Y,
        2 => Z,
        _ => throw new ArgumentOutOfRangeException(nameof(axis), axis, "A volume has axes 0, 1 and 2."),
    };
}
