namespace MedVlp.Volumes.Transforms;

/// <summary>Limits intensities to [<see cref="Min"/>, <see cref="Max"/>] (a window; for CT in Hounsfield units, for example [-1000, 1000]).</summary>
public sealed class Clamp : VolumeTransform
{
    /// <summary>The lowest value kept.</summary>
    public double Min { get; init; }

    /// <summary>The highest value kept.</summary>
    public double Max { get; init; } = 1;

    /// <summary>Creates a [0, 1] clamp.</summary>
    public Clamp()
    {
    }

    /// <summary>Creates a [<paramref name="min"/>, <paramref name="max"/>] clamp.</summary>
    public Clamp(double min, double max)
    {
        Min = min;
        Max = max;
    }

    /// <inheritdoc />
    public override void Validate()
    {
        if (!(Min <= Max) || !double.IsFinite(Min) || !double.IsFinite(Max))
        {
            throw new ArgumentException($"{nameof(Clamp)}: needs finite Min <= Max, got [{Min}, {Max}].");
        }
    }

    /// <inheritdoc />
    protected override Volume ApplyCore(Volume volume, Random random)
    {
        var dst = GC.AllocateUninitializedArray<float>(volume.Buffer.Length);
        IntensityMath.Clamp(volume.Buffer, dst, (float)Min, (float)Max);
        return volume.WithData(dst);
    }
}
