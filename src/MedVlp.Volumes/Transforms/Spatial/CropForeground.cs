namespace MedVlp.Volumes.Transforms;

/// <summary>
/// Crops to the bounding box of the voxels above <see cref="Threshold"/> (in the first frame), grown by
/// <see cref="Margin"/> voxels on every side (padding with <see cref="FillValue"/> where the margin leaves the volume), as
/// MONAI's <c>CropForeground</c>. A volume with no foreground is returned unchanged. The affine stays true.
/// </summary>
public sealed class CropForeground : VolumeTransform
{
    /// <summary>Voxels strictly greater than this are foreground (default 0).</summary>
    public double Threshold { get; init; }

    /// <summary>Voxels added around the box on every side (default 0).</summary>
    public int Margin { get; init; }

    /// <summary>The value of voxels the margin adds outside the volume (default 0).</summary>
    public double FillValue { get; init; }

    /// <inheritdoc />
    public override void Validate()
    {
        if (Margin < 0)
        {
            throw new ArgumentException($"{nameof(CropForeground)}: the margin must not be negative, got {Margin}.");
        }

        if (Margin > 1 << 20)
        {
            throw new ArgumentException($"{nameof(CropForeground)}: the margin {Margin} is above {1 << 20} voxels.");
        }
    }

    /// <summary>The inclusive voxel bounding box of the foreground, or <see langword="null"/> when there is none.</summary>
    public (VoxelOffset Min, VoxelOffset Max)? FindBox(Volume volume)
    {
        ArgumentNullException.ThrowIfNull(volume);
        var shape = volume.Shape;
        var threshold = (float)Threshold;
        var data = volume.Buffer;
        int nx = shape.X, ny = shape.Y;
        var lock_ = new object();
        int minX = int.MaxValue, minY = int.MaxValue, minZ = int.MaxValue, maxX = -1, maxY = -1, maxZ = -1;
        Parallel.For(0, shape.Z, z =>
        {
            int lx = int.MaxValue, ly = int.MaxValue, hx = -1, hy = -1;
            for (var y = 0; y < ny; y++)
            {
                var row = data.AsSpan(nx * (y + (ny * z)), nx);
                var first = IndexAbove(row, threshold);
                if (first < 0)
                {
                    continue;
                }

                var last = LastIndexAbove(row, threshold);
                ly = Math.Min(ly, y);
                hy = y;
                lx = Math.Min(lx, first);
                hx = Math.Max(hx, last);
            }

            if (hy < 0)
            {
                return;
            }

            lock (lock_)
            {
                minX = Math.Min(minX, lx);
                maxX = Math.Max(maxX, hx);
                minY = Math.Min(minY, ly);
                maxY = Math.Max(maxY, hy);
                minZ = Math.Min(minZ, z);
                maxZ = Math.Max(maxZ, z);
            }
        });

        return maxX < 0 ? null : (new VoxelOffset(minX, minY, minZ), new VoxelOffset(maxX, maxY, maxZ));
    }

    /// <inheritdoc />
    protected override Volume ApplyCore(Volume volume, Random random)
    {
        var box = FindBox(volume);
        if (box is null)
        {
            return volume;
        }

        var (min, max) = box.Value;
        // The margin is checked in doubles first: min - Margin and the grown size overflow int for a hostile margin.
        double Grown(int lo, int hi) => hi - lo + 1 + (2.0 * Margin);
        ResourceLimits.Default.CheckPreprocessedSize(Grown(min.X, max.X), Grown(min.Y, max.Y), Grown(min.Z, max.Z), volume.Frames, nameof(CropForeground), volume.Metadata.SourcePath);
        var start = new VoxelOffset(min.X - Margin, min.Y - Margin, min.Z - Margin);
        var size = new VolumeShape(max.X - min.X + 1 + (2 * Margin), max.Y - min.Y + 1 + (2 * Margin), max.Z - min.Z + 1 + (2 * Margin));
        return SpatialCrop.Extract(volume, start, size, (float)FillValue);
    }

    private static int IndexAbove(ReadOnlySpan<float> row, float threshold)
    {
        for (var i = 0; i < row.Length; i++)
        {
            if (row[i] > threshold)
            {
                return i;
            }
        }

        return -1;
    }

    private static int LastIndexAbove(ReadOnlySpan<float> row, float threshold)
    {
        for (var i = row.Length - 1; i >= 0; i--)
        {
            if (row[i] > threshold)
            {
                return i;
            }
        }

        return -1;
    }
}
