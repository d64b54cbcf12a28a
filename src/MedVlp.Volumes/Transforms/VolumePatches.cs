namespace MedVlp.Volumes.Transforms;

/// <summary>A patch cut out of a volume: where it starts (in the source's voxels) and the patch with its true affine.</summary>
/// <param name="Start">The source voxel that is the patch's voxel (0, 0, 0).</param>
/// <param name="Volume">The patch.</param>
public sealed record VolumePatch(VoxelOffset Start, Volume Volume);

/// <summary>Patch and slice extraction for patch-based models and 2D encoders; every piece keeps a true affine.</summary>
public static class VolumePatches
{
    /// <summary>
    /// The start positions of a sliding window of <paramref name="patch"/> voxels with the given fractional
    /// <paramref name="overlap"/> (MONAI's <c>dense_patch_slices</c>): the step is <c>max(1, floor(patch * (1 - overlap)))</c>
    /// and the last window is moved back to end at the border, so the whole volume is covered. Along an axis shorter than
    /// the patch there is one window at 0 (the patch is padded).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The overlap is not in [0, 1).</exception>
    public static IReadOnlyList<VoxelOffset> SlidingWindowStarts(VolumeShape shape, VolumeShape patch, double overlap)
    {
        shape.Validate();
        patch.Validate();
        if (!(overlap >= 0 && overlap < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(overlap), overlap, "The overlap must be in [0, 1).");
        }

        var perAxis = new List<int>[3];
        for (var a = 0; a < 3; a++)
        {
            perAxis[a] = [];
            var n = shape[a];
            var p = patch[a];
            if (n <= p)
            {
                perAxis[a].Add(0);
                continue;
            }

            var step = Math.Max(1, (int)Math.Floor(p * (1 - overlap)));
            var count = ((n - p + step - 1) / step) + 1;
            for (var c = 0; c < count; c++)
            {
                perAxis[a].Add(Math.Min(c * step, n - p));
            }
        }

        var starts = new List<VoxelOffset>();
        foreach (var z in perAxis[2])
        {
            foreach (var y in perAxis[1])
            {
                foreach (var x in perAxis[0])
                {
                    starts.Add(new VoxelOffset(x, y, z));
                }
            }
        }

        return starts;
    }

    /// <summary>Cuts the sliding-window patches (see <see cref="SlidingWindowStarts"/>), padding with <paramref name="fillValue"/> where the volume is smaller than a patch.</summary>
    public static IEnumerable<VolumePatch> SlidingWindow(Volume volume, VolumeShape patch, double overlap = 0.25, double fillValue = 0)
    {
        ArgumentNullException.ThrowIfNull(volume);
        var starts = SlidingWindowStarts(volume.Shape, patch, overlap);
        return Iterate();

        IEnumerable<VolumePatch> Iterate()
        {
            foreach (var s in starts)
            {
                yield return new VolumePatch(s, SpatialCrop.Extract(volume, s, patch, (float)fillValue));
            }
        }
    }

    /// <summary>One slice perpendicular to <paramref name="axis"/> (0 = i, 1 = j, 2 = k) as a volume one voxel thick along that axis, with its true affine.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The axis or index is out of range.</exception>
    public static Volume Slice(Volume volume, int axis, int index)
    {
        ArgumentNullException.ThrowIfNull(volume);
        if ((uint)axis > 2)
        {
            throw new ArgumentOutOfRangeException(nameof(axis), axis, "The axis must be 0, 1 or 2.");
        }

        if ((uint)index >= (uint)volume.Shape[axis])
        {
            throw new ArgumentOutOfRangeException(nameof(index), index, $"The volume has {volume.Shape[axis]} slices along axis {axis}.");
        }

        var start = new VoxelOffset(axis == 0 ? index : 0, axis == 1 ? index : 0, axis == 2 ? index : 0);
        var size = new VolumeShape(axis == 0 ? 1 : volume.Shape.X, axis == 1 ? 1 : volume.Shape.Y, axis == 2 ? 1 : volume.Shape.Z);
        return SpatialCrop.Extract(volume, start, size, 0);
    }

    /// <summary>Every slice perpendicular to <paramref name="axis"/>, in order (see <see cref="Slice"/>).</summary>
    public static IEnumerable<Volume> Slices(Volume volume, int axis)
    {
        ArgumentNullException.ThrowIfNull(volume);
        var count = volume.Shape[axis];
        return Enumerable.Range(0, count).Select(n => Slice(volume, axis, n));
    }

    /// <summary>
    /// The pixels of one slice of one frame as a row-major 2D array <c>[rows, columns]</c>: for axis 2 (axial in RAS-like
    /// volumes) rows run along j and columns along i; for axis 1, rows along k and columns along i; for axis 0, rows along
    /// k and columns along j.
    /// </summary>
    public static float[,] SliceArray(Volume volume, int axis, int index, int frame = 0)
    {
        var slice = Slice(volume, axis, index);
        var data = slice.GetFrame(frame);
        var (rows, cols) = axis switch { 0 => (volume.Shape.Z, volume.Shape.Y), 1 => (volume.Shape.Z, volume.Shape.X), _ => (volume.Shape.Y, volume.Shape.X) };
        var result = new float[rows, cols];
        for (var r = 0; r < rows; r++)
        {
            for (var c = 0; c < cols; c++)
            {
                result[r, c] = data[(r * cols) + c];
            }
        }

        return result;
    }
}
