namespace MedVlp.Volumes.Transforms;

/// <summary>
/// Cuts the box that starts at voxel <see cref="Start"/> and has <see cref="Size"/> voxels out of the volume. The box may
/// extend beyond the volume on any side (a negative start pads before, a large size pads after); those voxels get
/// <see cref="FillValue"/>. The affine moves with the box, so every voxel keeps its world position.
/// </summary>
public sealed class SpatialCrop : VolumeTransform
{
    /// <summary>The input voxel that becomes voxel (0, 0, 0) of the output (may be negative).</summary>
    public VoxelOffset Start { get; init; }

    /// <summary>The output shape.</summary>
    public VolumeShape Size { get; init; } = new(1, 1, 1);

    /// <summary>The value of output voxels outside the input (default 0).</summary>
    public double FillValue { get; init; }

    /// <inheritdoc />
    public override void Validate() => ResourceLimits.CheckFixedSize(Size, nameof(SpatialCrop));

    /// <inheritdoc />
    protected override Volume ApplyCore(Volume volume, Random random) => Extract(volume, Start, Size, (float)FillValue);

    /// <summary>Copies the box (<paramref name="start"/>, <paramref name="size"/>) out of every frame, padding outside voxels with <paramref name="fill"/>.</summary>
    internal static Volume Extract(Volume volume, VoxelOffset start, VolumeShape size, float fill)
    {
        var inShape = volume.Shape;
        if (start == default && size == inShape)
        {
            return volume;
        }

        ResourceLimits.Default.CheckPreprocessedSize(size.X, size.Y, size.Z, volume.Frames, "crop/pad", volume.Metadata.SourcePath);
        int nx = inShape.X, ny = inShape.Y, nz = inShape.Z, ox = size.X, oy = size.Y, oz = size.Z;
        var perIn = (int)inShape.VoxelCount;
        var perOut = checked((int)size.VoxelCount);
        var src = volume.Buffer;
        var dst = GC.AllocateUninitializedArray<float>(checked(perOut * volume.Frames));

        // the overlapping i range, in output coordinates
        var xFrom = Math.Clamp(-start.X, 0, ox);
        var xTo = Math.Clamp(nx - start.X, 0, ox);
        Parallel.For(0, oz * volume.Frames, fz =>
        {
            var frame = fz / oz;
            var z = fz % oz;
            var outSlice = dst.AsSpan((frame * perOut) + (z * ox * oy), ox * oy);
            var kz = z + start.Z;
            if ((uint)kz >= (uint)nz || xTo <= xFrom)
            {
                outSlice.Fill(fill);
                return;
            }

            for (var y = 0; y < oy; y++)
            {
                var outRow = outSlice.Slice(y * ox, ox);
                var jy = y + start.Y;
                if ((uint)jy >= (uint)ny)
                {
                    outRow.Fill(fill);
                    continue;
                }

                outRow[..xFrom].Fill(fill);
                outRow[xTo..].Fill(fill);
                var srcStart = (frame * perIn) + (nx * (jy + (ny * kz))) + xFrom + start.X;
                src.AsSpan(srcStart, xTo - xFrom).CopyTo(outRow[xFrom..xTo]);
            }
        });

        var affine = volume.Affine * Affine.FromRowMajor([1, 0, 0, start.X, 0, 1, 0, start.Y, 0, 0, 1, start.Z, 0, 0, 0, 1]);
        return new Volume(dst, size, affine, volume.FrameShape, volume.Spacing, volume.Metadata);
    }
}
