using BenchmarkDotNet.Attributes;
using MedVlp.Preprocessing;
using MedVlp.Volumes;
using MedVlp.Volumes.IO;
using MedVlp.Volumes.Transforms;
using TorchSharp;

namespace MedVlp.Benchmarks;

/// <summary>
/// Trilinear resampling of real volumes, to compare with benchmarks/reference/resample_reference.py (scipy.ndimage.zoom
/// order=1 and torch F.interpolate trilinear on the same input and output shapes), run in the same session.
/// </summary>
[MemoryDiagnoser]
public class ResampleBenchmarks
{
    private Volume _volume = null!;
    private ResampleToSpacing _toSpacing = null!;
    private ResampleToShape _toShape = null!;
    private TorchVolume _torchVolume = null!;

    /// <summary>The case: file and target spacing in mm.</summary>
    [Params("mricron/ch2better.nii.gz@1", "mricron/ch2.nii.gz@2")]
    public string Case { get; set; } = "";

    [GlobalSetup]
    public void Setup()
    {
        var parts = Case.Split('@');
        _volume = VolumeReader.Read(TestData.File(parts[0]));
        _toSpacing = new ResampleToSpacing(double.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture));
        var (shape, _) = _toSpacing.GetTargetGrid(_volume);
        _toShape = new ResampleToShape { Shape = shape, AlignCorners = true };
        torch.set_num_threads(Environment.ProcessorCount);
        _torchVolume = TorchVolume.FromVolume(_volume);
    }

    [GlobalCleanup]
    public void Cleanup() => _torchVolume.Dispose();

    /// <summary>World-correct resampling to the spacing (TorchIO grid), the CPU SIMD path.</summary>
    [Benchmark(Baseline = true)]
    public Volume ToSpacing() => _toSpacing.Apply(_volume);

    /// <summary>The same output shape with align-corners sampling (what scipy zoom does).</summary>
    [Benchmark]
    public Volume ToShapeAlignCorners() => _toShape.Apply(_volume);

    /// <summary>The TorchSharp path (grid_sample on the CPU) for the same grid.</summary>
    [Benchmark]
    public void ToSpacingTorchSharp()
    {
        using var r = TorchTransforms.Apply(_toSpacing, _torchVolume);
    }
}
