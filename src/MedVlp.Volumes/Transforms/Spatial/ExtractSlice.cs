namespace MedVlp.Volumes.Transforms;

/// <summary>The voxel axis across which <see cref="ExtractSlice"/> cuts.</summary>
public enum SliceAxis
{
    /// <summary>Across i (a sagittal slice of an RAS-stored volume).</summary>
    I,

    /// <summary>Across j (a coronal slice of an RAS-stored volume).</summary>
    J,

    /// <summary>Across k (an axial slice of an RAS-stored volume).</summary>
    K,
}

/// <summary>
/// Cuts one slice out of a volume and returns it as a 2D image (a volume one voxel thick along k), so that 2D models
/// (ResNet-50 of M-FLAG, LVM-Med, PRIOR) read slices of 3D data. The slice keeps its geometry: the affine maps the new
/// (i, j, 0) voxels to the world positions they had in the volume (the in-plane axes are the volume's remaining axes in
/// order, i before j before k). Frames (channels, time points) are kept.
/// </summary>
public sealed class ExtractSlice : VolumeTransform
{
    /// <summary>The axis across which to cut (default <see cref="SliceAxis.K"/>).</summary>
    public SliceAxis Axis { get; init; } = SliceAxis.K;

    /// <summary>The slice index along <see cref="Axis"/>; null for the middle slice (<c>n / 2</c>).</summary>
    public int? Index { get; init; }

    /// <inheritdoc />
    public override void Validate()
    {
        if (!Enum.IsDefined(Axis))
        {
            throw new ArgumentException($"ExtractSlice: unknown axis {Axis}; expected I, J or K.");
        }

        if (Index is < 0)
        {
            throw new ArgumentException($"ExtractSlice: the slice index must be >= 0 (or null for the middle slice), got {Index}.");
        }
    }

    /// <inheritdoc />
    protected override Volume ApplyCore(Volume volume, Random random)
    {
        var s = volume.Shape;
        var extent = Axis switch { SliceAxis.I => s.X, SliceAxis.J => s.Y, _ => s.Z };
        var index = Index ?? (extent / 2);
        if (index >= extent)
        {
            throw new VolumeFormatException(volume.Metadata.SourcePath ?? "volume", "slice index",
                $"ExtractSlice: index {index} along {Axis} is outside the volume's {extent} voxels ({s}).");
        }

        if (Axis == SliceAxis.K && extent == 1)
        {
            return volume;
        }

        // The output's (a, b) in-plane axes are the two remaining axes in order; P maps output voxels to input voxels.
        var (width, height) = Axis switch { SliceAxis.I => (s.Y, s.Z), SliceAxis.J => (s.X, s.Z), _ => (s.X, s.Y) };
        double[] p = Axis switch
        {
            SliceAxis.I => [0, 0, 1, index, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1],
            SliceAxis.J => [1, 0, 0, 0, 0, 0, 1, index, 0, 1, 0, 0, 0, 0, 0, 1],
            _ => [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, index, 0, 0, 0, 1],
        };
        var perIn = (int)s.VoxelCount;
        var perOut = width * height;
        var src = volume.Buffer;
        var dst = GC.AllocateUninitializedArray<float>(checked(perOut * volume.Frames));
        for (var f = 0; f < volume.Frames; f++)
        {
            var inFrame = src.AsSpan(f * perIn, perIn);
            var outFrame = dst.AsSpan(f * perOut, perOut);
            for (var b = 0; b < height; b++)
            {
                for (var a = 0; a < width; a++)
                {
                    var (i, j, k) = Axis switch { SliceAxis.I => (index, a, b), SliceAxis.J => (a, index, b), _ => (a, b, index) };
                    outFrame[(b * width) + a] = inFrame[i + (s.X * (j + (s.Y * k)))];
                }
            }
        }

        var affine = volume.Affine * Affine.FromRowMajor(p);
        return new Volume(dst, new VolumeShape(width, height, 1), affine, volume.FrameShape, null, volume.Metadata);
    }
}
