namespace MedVlp.Volumes.Transforms;

/// <summary>
/// Clamps intensities to the <see cref="Lower"/> and <see cref="Upper"/> percentiles of the volume (NumPy's
/// <c>percentile</c> with linear interpolation), optionally counting only non-zero voxels.
/// </summary>
public sealed class PercentileClip : VolumeTransform
{
    /// <summary>The lower percentile, 0..100 (default 0.5).</summary>
    public double Lower { get; init; } = 0.5;

    /// <summary>The upper percentile, 0..100 (default 99.5).</summary>
    public double Upper { get; init; } = 99.5;

    /// <summary>Compute the percentiles over non-zero voxels only.</summary>
    public bool NonzeroOnly { get; init; }

    /// <inheritdoc />
    public override void Validate()
    {
        if (!(Lower >= 0 && Lower <= Upper && Upper <= 100))
        {
            throw new ArgumentException($"{nameof(PercentileClip)}: needs 0 <= Lower <= Upper <= 100, got {Lower} and {Upper}.");
        }
    }

    /// <summary>NumPy's <c>percentile(values, q)</c> (linear interpolation between order statistics) of a sorted span.</summary>
    public static double PercentileOfSorted(ReadOnlySpan<float> sorted, double q)
    {
        if (sorted.IsEmpty)
        {
            return double.NaN;
        }

        var position = q / 100 * (sorted.Length - 1);
        var below = (int)Math.Floor(position);
        var above = Math.Min(below + 1, sorted.Length - 1);
        var fraction = position - below;
        return sorted[below] + (fraction * (sorted[above] - (double)sorted[below]));
    }

    /// <inheritdoc />
    protected override Volume ApplyCore(Volume volume, Random random)
    {
        var src = volume.Buffer;
        var values = NonzeroOnly ? src.Where(v => v != 0).ToArray() : (float[])src.Clone();
        if (values.Length == 0)
        {
            return volume;
        }

        Array.Sort(values);
        var lo = PercentileOfSorted(values, Lower);
        var hi = PercentileOfSorted(values, Upper);
        var dst = GC.AllocateUninitializedArray<float>(src.Length);
        IntensityMath.Clamp(src, dst, (float)lo, (float)hi);
        return volume.WithData(dst);
    }
}
