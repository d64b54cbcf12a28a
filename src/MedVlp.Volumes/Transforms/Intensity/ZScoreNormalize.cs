namespace MedVlp.Volumes.Transforms;

/// <summary>
/// Subtracts the mean and divides by the (population) standard deviation, as MONAI's <c>NormalizeIntensity</c>; with
/// <see cref="NonzeroOnly"/> the statistics come from the non-zero voxels and zero voxels stay zero. A constant volume is
/// only centred.
/// </summary>
public sealed class ZScoreNormalize : VolumeTransform
{
    /// <summary>Use and change only non-zero voxels (a mask of the foreground, for skull-stripped MRI).</summary>
    public bool NonzeroOnly { get; init; }

    /// <inheritdoc />
    protected override Volume ApplyCore(Volume volume, Random random) => Normalize(volume, null, NonzeroOnly);

    /// <summary>Z-scores <paramref name="volume"/> with statistics from the voxels where <paramref name="mask"/> is true, changing only those.</summary>
    /// <param name="volume">The volume (one frame, or the mask applies to each frame).</param>
    /// <param name="mask">One flag per voxel of a frame.</param>
    /// <exception cref="ArgumentException">The mask length differs from the voxels per frame.</exception>
    public static Volume NormalizeWithMask(Volume volume, ReadOnlySpan<bool> mask)
    {
        ArgumentNullException.ThrowIfNull(volume);
        if (mask.Length != volume.VoxelsPerFrame)
        {
            throw new ArgumentException($"The mask has {mask.Length} voxels; the volume has {volume.VoxelsPerFrame} per frame.", nameof(mask));
        }

        return Normalize(volume, mask.ToArray(), false);
    }

    private static Volume Normalize(Volume volume, bool[]? mask, bool nonzero)
    {
        var src = volume.Buffer;
        var dst = (float[])src.Clone();
        var perFrame = (int)volume.VoxelsPerFrame;
        if (mask is { Length: > 0 })
        {
            double sum = 0, squares = 0;
            long count = 0;
            for (var n = 0; n < src.Length; n++)
            {
                if (mask[n % perFrame])
                {
                    sum += src[n];
                    squares += (double)src[n] * src[n];
                    count++;
                }
            }

            var (mean, std) = MeanStd(sum, squares, count);
            for (var n = 0; n < src.Length; n++)
            {
                if (mask[n % perFrame])
                {
                    dst[n] = (float)((src[n] - mean) / std);
                }
            }

            return volume.WithData(dst);
        }

        var (s, q, c) = IntensityMath.Moments(src, nonzero);
        var (m, sd) = MeanStd(s, q, c);
        if (!nonzero)
        {
            IntensityMath.Affine(src, dst, 1 / sd, -m / sd);
            return volume.WithData(dst);
        }

        IntensityMath.ForBlocks(src.Length, (start, length) =>
        {
            for (var n = start; n < start + length; n++)
            {
                if (src[n] != 0)
                {
                    dst[n] = (float)((src[n] - m) / sd);
                }
            }
        });
        return volume.WithData(dst);
    }

    private static (double Mean, double Std) MeanStd(double sum, double squares, long count)
    {
        if (count == 0)
        {
            return (0, 1);
        }

        var mean = sum / count;
        var variance = Math.Max(0, (squares / count) - (mean * mean));
        var std = Math.Sqrt(variance);
        return (mean, std > 0 ? std : 1);
    }
}
