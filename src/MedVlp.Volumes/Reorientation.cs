namespace MedVlp.Volumes;

/// <summary>
/// Reorients volumes to any axis code (<c>"RAS"</c>, <c>"LPS"</c>, <c>"SAR"</c>, ...) by flipping and permuting
/// voxel axes, never resampling; the affine is updated exactly as nibabel's <c>as_closest_canonical</c> /
/// <c>ornt_transform</c> + <c>apply_orientation</c> + <c>inv_ornt_aff</c> do, so every voxel keeps its world position.
/// </summary>
public static class Reorientation
{
    /// <summary>
    /// Returns the volume with its voxel axes flipped and permuted so that its orientation is
    /// <paramref name="targetCodes"/> (the closest axis-aligned code for an oblique affine).
    /// Returns <paramref name="volume"/> itself when it already has that orientation.
    /// </summary>
    /// <param name="volume">The volume.</param>
    /// <param name="targetCodes">Three letters, one of each pair L/R, P/A, I/S, for example <c>"LPS"</c>.</param>
    /// <exception cref="ArgumentException">The code is not valid.</exception>
    /// <exception cref="InvalidOperationException">The affine has a degenerate (zero) axis and no orientation.</exception>
    public static Volume Reorient(this Volume volume, string targetCodes)
    {
        ArgumentNullException.ThrowIfNull(volume);
        var start = Orientation.AxisMapping(volume.Affine);
        foreach (var (axis, _) in start)
        {
            if (axis < 0)
            {
                throw new InvalidOperationException($"The affine {volume.Affine} has a degenerate axis, so the volume has no orientation to change.");
            }
        }

        var transform = Transform(start, FromCodes(targetCodes));
        return Apply(volume, transform);
    }

    /// <summary>
    /// Returns the volume reoriented to RAS+ (i toward Right, j toward Anterior, k toward Superior), as nibabel's
    /// <c>as_closest_canonical</c>. Returns <paramref name="volume"/> itself when it already is.
    /// </summary>
    public static Volume ToCanonical(this Volume volume) => Reorient(volume, "RAS");

    /// <summary>
    /// nibabel's <c>axcodes2ornt</c>: for each voxel axis of the code, the world axis (0 = L/R, 1 = P/A, 2 = I/S)
    /// and +1 when the code letter is R, A or S, else -1.
    /// </summary>
    /// <exception cref="ArgumentException">The code is not valid.</exception>
    public static (int WorldAxis, int Sign)[] FromCodes(string codes)
    {
        var valid = Orientation.Validate(codes);
        var result = new (int, int)[3];
        for (var n = 0; n < 3; n++)
        {
            var c = valid[n];
            result[n] = (Orientation.WorldAxisOf(c), c is 'R' or 'A' or 'S' ? 1 : -1);
        }

        return result;
    }

    /// <summary>
    /// nibabel's <c>ornt_transform</c>: the per-axis (new axis, flip) that takes an array in orientation
    /// <paramref name="start"/> to orientation <paramref name="end"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The orientations do not use the same world axes.</exception>
    public static (int NewAxis, int Flip)[] Transform(IReadOnlyList<(int WorldAxis, int Sign)> start, IReadOnlyList<(int WorldAxis, int Sign)> end)
    {
        ArgumentNullException.ThrowIfNull(start);
        ArgumentNullException.ThrowIfNull(end);
        if (start.Count != 3 || end.Count != 3)
        {
            throw new ArgumentException("Orientations of 3D volumes have three axes.", nameof(start));
        }

        var result = new (int, int)[3];
        var found = new bool[3];
        for (var endIn = 0; endIn < 3; endIn++)
        {
            var (endOut, endFlip) = end[endIn];
            var matched = false;
            for (var startIn = 0; startIn < 3; startIn++)
            {
                if (start[startIn].WorldAxis == endOut)
                {
                    result[startIn] = (endIn, start[startIn].Sign == endFlip ? 1 : -1);
                    found[startIn] = true;
                    matched = true;
                    break;
                }
            }

            if (!matched)
            {
                throw new ArgumentException($"Unable to find world axis {endOut} in the start orientation.", nameof(end));
            }
        }

        if (found.Contains(false))
        {
            throw new ArgumentException("The start orientation uses a world axis twice.", nameof(start));
        }

        return result;
    }

    /// <summary>
    /// nibabel's <c>inv_ornt_aff</c>: the affine taking voxel indices of the transformed array back to indices of
    /// the original array of shape <paramref name="shape"/>. The new volume's affine is <c>old * this</c>.
    /// </summary>
    public static Affine InverseTransformAffine(IReadOnlyList<(int NewAxis, int Flip)> transform, VolumeShape shape)
    {
        ArgumentNullException.ThrowIfNull(transform);
        var m = new double[16];
        for (var i = 0; i < 3; i++)
        {
            var (newAxis, flip) = transform[i];
            // original index i = flip * (new index along newAxis) + (flip < 0 ? shape[i] - 1 : 0)
            m[(i * 4) + newAxis] = flip;
            var center = -(shape[i] - 1) / 2.0;
            m[(i * 4) + 3] = (flip * center) - center;
        }

        m[15] = 1;
        return Affine.FromRowMajor(m);
    }

    /// <summary>
    /// nibabel's <c>apply_orientation</c> + <c>inv_ornt_aff</c>: flips every axis whose flip is -1, moves axis i to
    /// position <c>transform[i].NewAxis</c>, and updates the affine so voxels keep their world positions.
    /// Frames are transformed alike. Returns <paramref name="volume"/> itself for the identity transform.
    /// </summary>
    /// <exception cref="ArgumentException">The transform is not a permutation with flips of 1 or -1.</exception>
    public static Volume Apply(Volume volume, IReadOnlyList<(int NewAxis, int Flip)> transform)
    {
        ArgumentNullException.ThrowIfNull(volume);
        ArgumentNullException.ThrowIfNull(transform);
        if (transform.Count != 3 || transform.Select(t => t.NewAxis).Distinct().Count() != 3
            || transform.Any(t => (uint)t.NewAxis > 2 || (t.Flip != 1 && t.Flip != -1)))
        {
            throw new ArgumentException("A transform moves axes 0, 1, 2 each to a distinct new axis 0..2 with flip 1 or -1.", nameof(transform));
        }

        if (transform.Select((t, i) => t.NewAxis == i && t.Flip == 1).All(x => x))
        {
            return volume;
        }

        var shape = volume.Shape;
        var newExtent = new int[3];
        var newSpacing = new double[3];
        long[] inStride = [1, shape.X, (long)shape.X * shape.Y];
        var outStride = new long[3]; // input-offset step per unit step along each output axis
        long baseOffset = 0;
        for (var i = 0; i < 3; i++)
        {
            var (a, flip) = transform[i];
            newExtent[a] = shape[i];
            newSpacing[a] = volume.Spacing[i];
            outStride[a] = flip * inStride[i];
            if (flip < 0)
            {
                baseOffset += (shape[i] - 1) * inStride[i];
            }
        }

        var newShape = new VolumeShape(newExtent[0], newExtent[1], newExtent[2]);
        var src = volume.Buffer;
        var dst = GC.AllocateUninitializedArray<float>(src.Length);
        var perFrame = shape.VoxelCount;
        int n0 = newExtent[0], n1 = newExtent[1], n2 = newExtent[2];
        long s0 = outStride[0], s1 = outStride[1], s2 = outStride[2];
        Parallel.For(0, (long)volume.Frames * n2, fk =>
        {
            var frame = fk / n2;
            var k = fk % n2;
            var frameBase = frame * perFrame;
            var o = frameBase + ((long)k * n0 * n1);
            for (var j = 0; j < n1; j++)
            {
                var start = frameBase + baseOffset + (k * s2) + (j * s1);
                var row = dst.AsSpan((int)(o + ((long)j * n0)), n0);
                if (s0 == 1)
                {
                    src.AsSpan((int)start, n0).CopyTo(row);
                }
                else
                {
                    var p = start;
                    for (var i = 0; i < row.Length; i++, p += s0)
                    {
                        row[i] = src[p];
                    }
                }
            }
        });

        var affine = volume.Affine * InverseTransformAffine(transform, shape);
        return new Volume(dst, newShape, affine, volume.FrameShape, new Spacing(newSpacing[0], newSpacing[1], newSpacing[2]), volume.Metadata);
    }
}
