using MedVlp.Volumes.Transforms;

namespace MedVlp.Volumes.Tests.Transforms;

/// <summary>Intensity transforms against their formulas on small arrays (double-precision references).</summary>
public sealed class IntensityTests
{
    private static Volume Sample(int seed = 1, int n = 4096)
    {
        var rng = new Random(seed);
        var data = new float[n];
        for (var i = 0; i < n; i++)
        {
            data[i] = (float)((rng.NextDouble() * 3000) - 1200);
        }

        return new Volume(data, new VolumeShape(16, 16, n / 256), Affine.FromSpacing(new Spacing(0.7, 0.8, 2.5)));
    }

    private static void Near(double expected, double actual, double tolerance) =>
        Assert.True(Math.Abs(expected - actual) <= tolerance, $"{actual} differs from {expected} by more than {tolerance}");

    [Fact]
    public void MinMaxMapsTheRangeLinearly()
    {
        var v = Sample();
        var src = v.Data.ToArray();
        double min = src.Min(), max = src.Max();
        var r = new MinMaxNormalize { OutputMin = -2, OutputMax = 3 }.Apply(v).Data.ToArray();
        for (var i = 0; i < src.Length; i++)
        {
            Near(((src[i] - min) / (max - min) * 5) - 2, r[i], 1e-5);
        }

        Assert.Same(v.Affine, new MinMaxNormalize().Apply(v).Affine);
        Assert.All(new MinMaxNormalize().Apply(Volume.Zeros(new VolumeShape(2, 2, 2))).Data.ToArray(), x => Assert.Equal(0f, x));
    }

    [Fact]
    public void ClampAndScaleRangeGiveColipriValues()
    {
        var v = Sample();
        var src = v.Data.ToArray();
        var clamped = new Clamp(-1000, 1000).Apply(v);
        var scaled = new ScaleIntensityRange { InputMin = -1000, InputMax = 1000, OutputMin = -1, OutputMax = 1 }.Apply(clamped).Data.ToArray();
        for (var i = 0; i < src.Length; i++)
        {
            Near(Math.Clamp(src[i], -1000, 1000) / 1000.0, scaled[i], 1e-6);
        }

        var clipped = new ScaleIntensityRange { InputMin = -1000, InputMax = 1000, OutputMin = -1, OutputMax = 1, Clip = true }.Apply(v).Data.ToArray();
        Assert.Equal(scaled, clipped);
    }

    [Fact]
    public void ZScoreUsesPopulationStatistics()
    {
        var v = Sample();
        var src = v.Data.ToArray().Select(x => (double)x).ToArray();
        var mean = src.Average();
        var std = Math.Sqrt(src.Select(x => (x - mean) * (x - mean)).Average());
        var r = new ZScoreNormalize().Apply(v).Data.ToArray();
        for (var i = 0; i < src.Length; i++)
        {
            Near((src[i] - mean) / std, r[i], 1e-5);
        }

        var masked = v.Data.ToArray();
        for (var i = 0; i < masked.Length; i += 3)
        {
            masked[i] = 0;
        }

        var nz = masked.Where(x => x != 0).Select(x => (double)x).ToArray();
        var m2 = nz.Average();
        var s2 = Math.Sqrt(nz.Select(x => (x - m2) * (x - m2)).Average());
        var r2 = new ZScoreNormalize { NonzeroOnly = true }.Apply(v.WithData(masked)).Data.ToArray();
        for (var i = 0; i < masked.Length; i++)
        {
            Near(masked[i] == 0 ? 0 : (masked[i] - m2) / s2, r2[i], 1e-5);
        }

        var mask = masked.Select(x => x != 0).ToArray();
        var r3 = ZScoreNormalize.NormalizeWithMask(v.WithData(masked), mask).Data.ToArray();
        for (var i = 0; i < r2.Length; i++)
        {
            Near(r2[i], r3[i], 1e-5);
        }
    }
}
