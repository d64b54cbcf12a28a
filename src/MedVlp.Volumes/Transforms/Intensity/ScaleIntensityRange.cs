namespace MedVlp.Volumes.Transforms;

/// <summary>
/// Maps [<see cref="InputMin"/>, <see cref="InputMax"/>] linearly onto [<see cref="OutputMin"/>, <see cref="OutputMax"/>]
/// (MONAI's <c>ScaleIntensityRange</c>, TorchIO's <c>RescaleIntensity</c> with <c>in_min_max</c>); with
/// <see cref="Clip"/> the input is first clamped to its range.
/// </summary>
public sealed class ScaleIntensityRange : VolumeTransform
{
    /// <summary>The input value that maps to <see cref="OutputMin"/>.</summary>
    public double InputMin { get; init; }

    /// <summary>The input value that maps to <see cref="OutputMax"/>.</summary>
    public double InputMax { get; init; } = 1;

    /// <summary>The output of <see cref="InputMin"/> (default 0).</summary>
    public double OutputMin { get; init; }

    /// <summary>The output of <see cref="InputMax"/> (default 1).</summary>
    public double OutputMax { get; init; } = 1;

    /// <summary>Clamp the input to [<see cref="InputMin"/>, <see cref="InputMax"/>] first (default false).</summary>
    public bool Clip { get; init; }

    /// <inheritdoc />
    public override void Validate()
    {
        if (!double.IsFinite(InputMin) || !double.IsFinite(InputMax) || !double.IsFinite(OutputMin) || !double.IsFinite(OutputMax) || InputMin == InputMax)
        {
            throw new ArgumentException($"{nameof(ScaleIntensityRange)}: needs finite ranges and InputMin != InputMax, got [{InputMin}, {InputMax}] -> [{OutputMin}, {OutputMax}].");
        }
    }

    /// <inheritdoc />
    protected override Volume ApplyCore(Volume volume, Random random)
    {
        var src = volume.Buffer;
        var dst = GC.AllocateUninitializedArray<float>(src.Length);
        if (Clip)
        {
            IntensityMath.Clamp(src, dst, (float)Math.Min(InputMin, InputMax), (float)Math.Max(InputMin, InputMax));
            src = dst;
        }

        var scale = (OutputMax - OutputMin) / (InputMax - InputMin);
        IntensityMath.Affine(src, dst, scale, OutputMin - (InputMin * scale));
        return volume.WithData(dst);
    }
}
