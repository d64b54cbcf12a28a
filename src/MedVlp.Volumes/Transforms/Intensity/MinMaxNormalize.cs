using System.Numerics.Tensors;

namespace MedVlp.Volumes.Transforms;

/// <summary>
/// Maps the volume's minimum to <see cref="OutputMin"/> and its maximum to <see cref="OutputMax"/> linearly (MedBLIP's
/// <c>(x - min) / (max - min)</c> for the default [0, 1]). Statistics are taken over all frames; a constant volume
/// becomes <see cref="OutputMin"/>.
/// </summary>
public sealed class MinMaxNormalize : VolumeTransform
{
    /// <summary>The value the minimum maps to (default 0).</summary>
    public double OutputMin { get; init; }

    /// <summary>The value the maximum maps to (default 1).</summary>
    public double OutputMax { get; init; } = 1;

    /// <inheritdoc />
    public override void Validate()
    {
        if (!double.IsFinite(OutputMin) || !double.IsFinite(OutputMax))
        {
            throw new ArgumentException($"{nameof(MinMaxNormalize)}: the output range must be finite.");
        }
    }

    /// <inheritdoc />
    protected override Volume ApplyCore(Volume volume, Random random)
    {
        var src = volume.Buffer;
        double min = TensorPrimitives.Min<float>(src), max = TensorPrimitives.Max<float>(src);
        var dst = GC.AllocateUninitializedArray<float>(src.Length);
        if (!(max > min))
        {
            dst.AsSpan().Fill((float)OutputMin);
            return volume.WithData(dst);
        }

        var scale = (OutputMax - OutputMin) / (max - min);
        IntensityMath.Affine(src, dst, scale, OutputMin - (min * scale));
        return volume.WithData(dst);
    }
}
