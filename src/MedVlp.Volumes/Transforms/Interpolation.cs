namespace MedVlp.Volumes.Transforms;

/// <summary>How a resampling transform reads the input between voxel centres.</summary>
public enum Interpolation
{
    /// <summary>Trilinear interpolation of the eight surrounding voxels (<c>order=1</c> in scipy, <c>trilinear</c> in PyTorch).</summary>
    Trilinear,

    /// <summary>The value of the nearest voxel (for label maps).</summary>
    Nearest,
}
