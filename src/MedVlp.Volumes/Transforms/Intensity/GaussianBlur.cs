using System.Numerics.Tensors;

namespace MedVlp.Volumes.Transforms;

/// <summary>
/// Separable Gaussian smoothing with a standard deviation in voxels per axis, as SciPy's
/// <c>ndimage.gaussian_filter(x, sigma, mode="nearest", truncate=4.0)</c> (kernel radius <c>int(truncate * sigma + 0.5)</c>,
/// edges extended). A sigma of 0 leaves that axis alone.
/// </summary>
public sealed class GaussianBlur : VolumeTransform
{
    /// <summary>The largest kernel radius (truncate x sigma) in voxels; beyond it the kernel exceeds any volume.</summary>
    public const int MaxKernelRadius = 1 << 16;

    /// <summary>The standard deviation along i, in voxels (default 1).</summary>
    public double SigmaI { get; init; } = 1;

    /// <summary>The standard deviation along j, in voxels (default 1).</summary>
    public double SigmaJ { get; init; } = 1;

    /// <summary>The standard deviation along k, in voxels (default 1).</summary>
    public double SigmaK { get; init; } = 1;

    /// <summary>The kernel extends to <c>Truncate</c> standard deviations (default 4, as SciPy).</summary>
    public double Truncate { get; init; } = 4;

    /// <inheritdoc />
    public override void Validate()
    {
        if (!(SigmaI >= 0) || !(SigmaJ >= 0) || !(SigmaK >= 0) || !(Truncate > 0) || !double.IsFinite(SigmaI + SigmaJ + SigmaK + Truncate))
        {
            throw new ArgumentException($"{nameof(GaussianBlur)}: sigmas must be finite and non-negative and truncate positive.");
        }

        if (Math.Max(SigmaI, Math.Max(SigmaJ, SigmaK)) * Truncate > MaxKernelRadius)
        {
            throw new ArgumentException($"{nameof(GaussianBlur)}: the kernel radius truncate x sigma = {Math.Max(SigmaI, Math.Max(SigmaJ, SigmaK)) * Truncate:G4} voxels is above {MaxKernelRadius}.");
        }
    }

    /// <inheritdoc />
    protected override Volume ApplyCore(Volume volume, Random random) => Blur(volume, SigmaI, SigmaJ, SigmaK, Truncate);

    internal static Volume Blur(Volume volume, double si, double sj, double sk, double truncate)
    {
        var data = volume.Buffer;
        var shape = volume.Shape;
        var perFrame = (int)volume.VoxelsPerFrame;
        var result = (float[])data.Clone();
        var scratch = GC.AllocateUninitializedArray<float>(result.Length);
        var sigmas = new[] { si, sj, sk };
        for (var axis = 0; axis < 3; axis++)
        {
            var kernel = Kernel(sigmas[axis], truncate);
            if (kernel is null)
            {
                continue;
            }

            for (var f = 0; f < volume.Frames; f++)
            {
                ConvolveAxis(result.AsSpan(f * perFrame, perFrame).ToArray(), scratch, f * perFrame, shape, axis, kernel);
            }

            (result, scratch) = (scratch, result);
        }

        return volume.WithData(result);
    }

    /// <summary>SciPy's normalised Gaussian kernel, or null for sigma 0.</summary>
    internal static float[]? Kernel(double sigma, double truncate)
    {
        if (sigma <= 0)
        {
            return null;
        }

        var radius = (int)((truncate * sigma) + 0.5);
        var weights = new double[(2 * radius) + 1];
        double sum = 0;
        for (var t = -radius; t <= radius; t++)
        {
            weights[t + radius] = Math.Exp(-0.5 * t * t / (sigma * sigma));
            sum += weights[t + radius];
        }

        return [.. weights.Select(w => (float)(w / sum))];
    }

    private static void ConvolveAxis(float[] src, float[] dst, int dstOffset, VolumeShape shape, int axis, float[] kernel)
    {
        int nx = shape.X, ny = shape.Y, nz = shape.Z;
        var radius = kernel.Length / 2;
        var slice = nx * ny;
        switch (axis)
        {
            case 2:
                Parallel.For(0, nz, z =>
                {
                    var acc = dst.AsSpan(dstOffset + (z * slice), slice);
                    acc.Clear();
                    for (var t = 0; t < kernel.Length; t++)
                    {
                        var zz = Math.Clamp(z + t - radius, 0, nz - 1);
                        TensorPrimitives.MultiplyAdd(src.AsSpan(zz * slice, slice), kernel[t], acc, acc);
                    }
                });
                break;
            case 1:
                Parallel.For(0, nz, z =>
                {
                    for (var y = 0; y < ny; y++)
                    {
                        var acc = dst.AsSpan(dstOffset + (z * slice) + (y * nx), nx);
                        acc.Clear();
                        for (var t = 0; t < kernel.Length; t++)
                        {
                            var yy = Math.Clamp(y + t - radius, 0, ny - 1);
                            TensorPrimitives.MultiplyAdd(src.AsSpan((z * slice) + (yy * nx), nx), kernel[t], acc, acc);
                        }
                    }
                });
                break;
            default:
                Parallel.For(0, nz, () => new float[nx + (2 * radius)], (z, _, padded) =>
                {
                    for (var y = 0; y < ny; y++)
                    {
                        var row = src.AsSpan((z * slice) + (y * nx), nx);
                        padded.AsSpan(0, radius).Fill(row[0]);
                        row.CopyTo(padded.AsSpan(radius));
                        padded.AsSpan(radius + nx).Fill(row[nx - 1]);
                        var acc = dst.AsSpan(dstOffset + (z * slice) + (y * nx), nx);
                        acc.Clear();
                        for (var t = 0; t < kernel.Length; t++)
                        {
                            TensorPrimitives.MultiplyAdd(padded.AsSpan(t, nx), kernel[t], acc, acc);
                        }
                    }

                    return padded;
                }, _ => { });
                break;
        }
    }
}
