namespace MedVlp.Volumes.Transforms;

/// <summary>
/// Resizes so that the longest axis has <see cref="Size"/> voxels, keeping the aspect ratio in voxels, as MedBLIP's
/// released code does: each axis becomes <c>floor(Size * n / max(n))</c> voxels, resampled trilinearly with
/// <c>align_corners=True</c> (by default). The affine is updated so every voxel keeps its world position.
/// </summary>
public sealed class ResizeLongestSide : ResamplingTransform
{
    /// <summary>The length of the longest axis after resizing (224 for MedBLIP).</summary>
    public int Size { get; init; } = 224;

    /// <summary>True (default, MedBLIP) for PyTorch's <c>align_corners=True</c>.</summary>
    public bool AlignCorners { get; init; } = true;

    /// <inheritdoc />
    public override void Validate()
    {
        if (Size <= 0)
        {
            throw new ArgumentException($"{nameof(ResizeLongestSide)}: the size must be positive, got {Size}.");
        }
    }

    /// <summary>The shape a volume of <paramref name="shape"/> is resized to.</summary>
    public VolumeShape TargetShape(VolumeShape shape)
    {
        var longest = Math.Max(shape.X, Math.Max(shape.Y, shape.Z));
        int Side(int n) => Math.Max(1, (int)((double)(Size * (long)n) / longest));
        return new VolumeShape(Side(shape.X), Side(shape.Y), Side(shape.Z));
    }

    /// <inheritdoc />
    public override (VolumeShape Shape, Affine Affine) GetTargetGrid(VolumeShape shape, Affine affine)
    {
        var target = TargetShape(shape);
        ResourceLimits.Default.CheckPreprocessedSize(target.X, target.Y, target.Z, 1, nameof(ResizeLongestSide), null);
        return (target, ResampleToShape.GridFor(affine, shape, target, AlignCorners));
    }
}
