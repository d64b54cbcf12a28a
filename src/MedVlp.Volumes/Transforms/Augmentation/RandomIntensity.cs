using System.Numerics.Tensors;

namespace MedVlp.Volumes.Transforms;

/// <summary>Adds one offset drawn uniformly from [-<see cref="MaxOffset"/>, <see cref="MaxOffset"/>] to every voxel (MONAI's <c>RandShiftIntensity</c>).</summary>
public sealed class RandomIntensityShift : RandomTransform
{
    /// <summary>The largest absolute offset (default 0.1).</summary>
    public double MaxOffset { get; init; } = 0.1;

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        ValidateRange("the offset", 0, MaxOffset);
    }

    /// <inheritdoc />
    protected override Volume ApplyRandom(Volume volume, Random random)
    {
        var offset = Uniform(random, -MaxOffset, MaxOffset);
        var dst = GC.AllocateUninitializedArray<float>(volume.Buffer.Length);
        IntensityMath.Affine(volume.Buffer, dst, 1, offset);
        return volume.WithData(dst);
    }
}

/// <summary>Multiplies every voxel by <c>1 + u</c>, u uniform in [-<see cref="MaxFactor"/>, <see cref="MaxFactor"/>] (MONAI's <c>RandScaleIntensity</c>).</summary>
public sealed class RandomIntensityScale : RandomTransform
{
    /// <summary>The largest relative change (default 0.1).</summary>
    public double MaxFactor { get; init; } = 0.1;

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        ValidateRange("the factor", 0, MaxFactor);
    }

    /// <inheritdoc />
    protected override Volume ApplyRandom(Volume volume, Random random)
    {
        var factor = 1 + Uniform(random, -MaxFactor, MaxFactor);
        var dst = GC.AllocateUninitializedArray<float>(volume.Buffer.Length);
        IntensityMath.Affine(volume.Buffer, dst, factor, 0);
        return volume.WithData(dst);
    }
}

/// <summary>
/// Gamma contrast change as MONAI's <c>RandAdjustContrast</c>: with gamma uniform in [<see cref="GammaMin"/>,
/// <see cref="GammaMax"/>], <c>x' = ((x - min) / range)^gamma * range + min</c>, so the intensity range is kept.
/// </summary>
public sealed class RandomGamma : RandomTransform
{
    /// <summary>The smallest gamma (default 0.7).</summary>
    public double GammaMin { get; init; } = 0.7;

    /// <summary>The largest gamma (default 1.5).</summary>
    public double GammaMax { get; init; } = 1.5;

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        ValidateRange("gamma", GammaMin, GammaMax);
        if (!(GammaMin > 0))
        {
            throw new ArgumentException($"{nameof(RandomGamma)}: gamma must be positive.");
        }
    }

    /// <inheritdoc />
    protected override Volume ApplyRandom(Volume volume, Random random)
    {
        var gamma = (float)Uniform(random, GammaMin, GammaMax);
        var src = volume.Buffer;
        float min = TensorPrimitives.Min<float>(src), max = TensorPrimitives.Max<float>(src);
        var range = max - min;
        if (!(range > 0))
        {
            return volume;
        }

        var dst = GC.AllocateUninitializedArray<float>(src.Length);
        IntensityMath.ForBlocks(src.Length, (start, length) =>
        {
            var d = dst.AsSpan(start, length);
            TensorPrimitives.Subtract(src.AsSpan(start, length), min, d);
            TensorPrimitives.Multiply(d, 1 / range, d);
            TensorPrimitives.Max(d, 0f, d);
            TensorPrimitives.Pow(d, gamma, d);
            TensorPrimitives.Multiply(d, range, d);
            TensorPrimitives.Add(d, min, d);
        });
        return volume.WithData(dst);
    }
}

/// <summary>Adds independent Gaussian noise N(<see cref="Mean"/>, <see cref="Std"/>^2) to every voxel (a fresh standard deviation
/// uniform in [0, <see cref="Std"/>] when <see cref="RandomStd"/>), as MONAI's <c>RandGaussianNoise</c>.</summary>
public sealed class RandomGaussianNoise : RandomTransform
{
    /// <summary>The noise mean (default 0).</summary>
    public double Mean { get; init; }

    /// <summary>The noise standard deviation (default 0.1).</summary>
    public double Std { get; init; } = 0.1;

    /// <summary>Draw the standard deviation uniformly from [0, <see cref="Std"/>] each time (default false).</summary>
    public bool RandomStd { get; init; }

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        ValidateRange("the standard deviation", 0, Std);
        ValidateRange("the mean", Mean, Mean);
    }

    /// <inheritdoc />
    protected override Volume ApplyRandom(Volume volume, Random random)
    {
        var std = RandomStd ? Uniform(random, 0, Std) : Std;
        var src = volume.Buffer;
        var dst = GC.AllocateUninitializedArray<float>(src.Length);

        // One seed per block from the caller's generator keeps the result independent of thread scheduling.
        const int block = 1 << 16;
        var blocks = (src.Length + block - 1) / block;
        var seeds = new int[blocks];
        for (var b = 0; b < blocks; b++)
        {
            seeds[b] = random.Next();
        }

        Parallel.For(0, blocks, b =>
        {
            var rng = new Random(seeds[b]);
            var start = b * block;
            var end = Math.Min(src.Length, start + block);
            for (var n = start; n < end; n += 2)
            {
                // Box-Muller: two independent normals per pair of uniforms
                var u1 = 1.0 - rng.NextDouble();
                var u2 = rng.NextDouble();
                var radius = Math.Sqrt(-2 * Math.Log(u1));
                dst[n] = (float)(src[n] + Mean + (std * radius * Math.Cos(2 * Math.PI * u2)));
                if (n + 1 < end)
                {
                    dst[n + 1] = (float)(src[n + 1] + Mean + (std * radius * Math.Sin(2 * Math.PI * u2)));
                }
            }
        });
        return volume.WithData(dst);
    }
}

/// <summary>Gaussian smoothing with one isotropic sigma (in voxels) drawn uniformly from [<see cref="SigmaMin"/>, <see cref="SigmaMax"/>].</summary>
public sealed class RandomGaussianBlur : RandomTransform
{
    /// <summary>The smallest sigma in voxels (default 0.25).</summary>
    public double SigmaMin { get; init; } = 0.25;

    /// <summary>The largest sigma in voxels (default 1.5).</summary>
    public double SigmaMax { get; init; } = 1.5;

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        ValidateRange("sigma", SigmaMin, SigmaMax);
        if (SigmaMin < 0)
        {
            throw new ArgumentException($"{nameof(RandomGaussianBlur)}: sigma must not be negative.");
        }

        if (SigmaMax * 4 > GaussianBlur.MaxKernelRadius)
        {
            throw new ArgumentException($"{nameof(RandomGaussianBlur)}: the largest sigma {SigmaMax:G4} makes a kernel radius above {GaussianBlur.MaxKernelRadius} voxels.");
        }
    }

    /// <inheritdoc />
    protected override Volume ApplyRandom(Volume volume, Random random)
    {
        var sigma = Uniform(random, SigmaMin, SigmaMax);
        return GaussianBlur.Blur(volume, sigma, sigma, sigma, 4);
    }
}

/// <summary>
/// Cuts a box of <see cref="Size"/> voxels at a uniformly random position; along an axis where the volume is smaller, it
/// pads centred with <see cref="FillValue"/>. The affine stays true.
/// </summary>
public sealed class RandomCrop : RandomTransform
{
    /// <summary>The output shape.</summary>
    public VolumeShape Size { get; init; } = new(96, 96, 96);

    /// <summary>The value of padded voxels (default 0).</summary>
    public double FillValue { get; init; }

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        ResourceLimits.CheckFixedSize(Size, nameof(RandomCrop));
    }

    /// <inheritdoc />
    protected override Volume ApplyRandom(Volume volume, Random random)
    {
        var start = new int[3];
        for (var a = 0; a < 3; a++)
        {
            var d = volume.Shape[a] - Size[a];
            start[a] = d >= 0 ? random.Next(d + 1) : -((-d + 1) / 2);
        }

        return SpatialCrop.Extract(volume, new VoxelOffset(start[0], start[1], start[2]), Size, (float)FillValue);
    }
}
