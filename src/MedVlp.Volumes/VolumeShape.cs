namespace MedVlp.Volumes;

/// <summary>The number of voxels along the three spatial axes i, j, k of a volume.</summary>
/// <param name="X">Voxels along i, the fastest-varying axis in memory.</param>
/// <param name="Y">Voxels along j.</param>
/// <param name="Z">Voxels along k, the slowest-varying spatial axis.</param>
public readonly record struct VolumeShape(int X, int Y, int Z)
{
    /// <summary>The number of voxels in one 3D frame.</summary>
    public long VoxelCount => (long)X * Y * Z;

    /// <summary>The extent along axis 0, 1 or 2.</summary>
    public int this[int axis] => axis switch
    {
        0 => X,
        1 => Y,
        2 => Z,
        _ => throw new ArgumentOutOfRangeException(nameof(axis), axis, "A volume has axes 0, 1 and 2."),
    };

    /// <summary>Throws unless every extent is positive.</summary>
    public void Validate()
    {
        if (X <= 0 || Y <= 0 || Z <= 0)
        {
            throw new ArgumentException($"Every extent of a volume shape must be positive, got {this}.");
        }
    }

    /// <inheritdoc />
    public override string ToString() => $"{X}x{Y}x{Z}";
}

/// <summary>The physical size of a voxel in millimetres along i, j and k.</summary>
/// <param name="X">Millimetres between voxel centres along i.</param>
/// <param name="Y">Millimetres between voxel centres along j.</param>
/// <param name="Z">Millimetres between voxel centres along k.</param>
public readonly record struct Spacing(double X, double Y, double Z)
{
    /// <summary>The spacing along axis 0, 1 or 2.</summary>
    public double this[int axis] => axis switch
    {
        0 => X,
        1 => Y,
        2 => Z,
        _ => throw new ArgumentOutOfRangeException(nameof(axis), axis, "A volume has axes 0, 1 and 2."),
    };

    /// <summary>An isotropic spacing.</summary>
    public static Spacing Isotropic(double mm) => new(mm, mm, mm);

    /// <inheritdoc />
    public override string ToString() => FormattableString.Invariant($"{X:G6}x{Y:G6}x{Z:G6} mm");
}
