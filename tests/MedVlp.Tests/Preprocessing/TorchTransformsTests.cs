using MedVlp.Preprocessing;
using MedVlp.Testing;
using MedVlp.Volumes;
using MedVlp.Volumes.IO;
using MedVlp.Volumes.Transforms;
using TorchSharp;

namespace MedVlp.Tests.Preprocessing;

/// <summary>The TorchSharp path gives the CPU path's results (same grid, same values within float tolerance).</summary>
public sealed class TorchTransformsTests
{
    private static readonly Lazy<Volume> Anatomical = new(() => VolumeReader.Read(TestData.File("nibabel/anatomical.nii")));
    private static readonly Lazy<Volume> Oblique4D = new(() => VolumeReader.Read(TestData.File("nibabel/example4d.nii.gz")));
    private static readonly Lazy<Volume> Ch2 = new(() => VolumeReader.Read(TestData.File("mricron/ch2.nii.gz")));

    public static TheoryData<string> Names() =>
    [
        "spacing", "spacing_nearest", "spacing_min_fill", "shape", "shape_align", "longest", "reorient", "flip", "crop", "crop_or_pad",
        "min_max", "clamp", "scale_range", "z_score", "z_score_nonzero", "rotate90_fallback", "blur_fallback",
    ];

    private static VolumeTransform Make(string name) => name switch
    {
        "spacing" => new ResampleToSpacing { Spacing = new Spacing(1.7, 2.3, 3.1), FillValue = -5 },
        "spacing_nearest" => new ResampleToSpacing { Spacing = new Spacing(3, 1, 4), Interpolation = Interpolation.Nearest },
        "spacing_min_fill" => new ResampleToSpacing { Spacing = Spacing.Isotropic(2.5), FillWithMinimum = true },
        "shape" => new ResampleToShape { Shape = new VolumeShape(31, 20, 47) },
        "shape_align" => new ResampleToShape { Shape = new VolumeShape(31, 20, 47), AlignCorners = true },
        "longest" => new ResizeLongestSide { Size = 50 },
        "reorient" => new Reorient("SAR"),
        "flip" => new Flip { I = true, K = true },
        "crop" => new SpatialCrop { Start = new VoxelOffset(-3, 4, 2), Size = new VolumeShape(40, 20, 30), FillValue = 9 },
        "crop_or_pad" => new CropOrPad { Size = new VolumeShape(19, 44, 33), FillValue = -1 },
        "min_max" => new MinMaxNormalize { OutputMin = -1, OutputMax = 1 },
        "clamp" => new Clamp(100, 900),
        "scale_range" => new ScaleIntensityRange { InputMin = 0, InputMax = 1000, OutputMin = -1, OutputMax = 1, Clip = true },
        "z_score" => new ZScoreNormalize(),
        "z_score_nonzero" => new ZScoreNormalize { NonzeroOnly = true },
        "rotate90_fallback" => new Rotate90 { First = 0, Second = 2 },
        "blur_fallback" => new GaussianBlur(),
        _ => throw new ArgumentException(name),
    };

    [Theory]
    [MemberData(nameof(Names))]
    public void DeviceAndCpuPathsAgree(string name)
    {
        var transform = Make(name);
        foreach (var volume in new[] { Anatomical.Value, Oblique4D.Value })
        {
            var cpu = transform.Apply(volume);
            using var input = TorchVolume.FromVolume(volume);
            using var output = TorchTransforms.Apply(transform, input);
            var device = output.ToVolume();
            AssertSame(cpu, device, name);
        }
    }

    [Fact]
    public void ObliqueGridAgrees()
    {
        var volume = Ch2.Value;
        var affine = Affine.FromRowMajor([1.4, -0.3, 0.1, -80, 0.35, 1.3, -0.2, -110, -0.05, 0.25, 1.45, -60, 0, 0, 0, 1]);
        var shape = new VolumeShape(90, 100, 80);
        var cpu = Resampler.Resample(volume, shape, affine, new ResampleOptions { FillValue = -2 });
        using var input = TorchVolume.FromVolume(volume);
        using var result = TorchTransforms.Resample(input.Data, volume.Shape, volume.Affine, shape, affine, new ResampleOptions { FillValue = -2 });
        using var device = new TorchVolume(result.alias(), affine);
        AssertSame(cpu, device.ToVolume(), "oblique");

        var nearest = new ResampleOptions { Interpolation = Interpolation.Nearest, FillWithMinimum = true };
        var cpuNearest = Resampler.Resample(volume, shape, affine, nearest);
        using var resultNearest = TorchTransforms.Resample(input.Data, volume.Shape, volume.Affine, shape, affine, nearest);
        using var deviceNearest = new TorchVolume(resultNearest.alias(), affine);
        AssertSame(cpuNearest, deviceNearest.ToVolume(), "oblique nearest");
    }

    [Theory]
    [InlineData("medblip")]
    [InlineData("colipri")]
    public void PresetsAgree(string preset)
    {
        var pipeline = TransformPresets.Get(preset);
        var volume = Ch2.Value;
        var cpu = pipeline.Apply(volume);
        using var input = TorchVolume.FromVolume(volume);
        using var output = TorchTransforms.Apply(pipeline, input);
        AssertSame(cpu, output.ToVolume(), preset);
        Assert.False(input.Data.IsInvalid);
    }

    [Fact]
    public void PipelineLeaksNoTensors()
    {
        var pipeline = TransformPresets.Colipri();
        using var input = TorchVolume.FromVolume(Anatomical.Value);
        using (TorchTransforms.Apply(pipeline, input))
        {
        }

        var before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (var n = 0; n < 3; n++)
        {
            using var r = TorchTransforms.Apply(pipeline, input);
        }

        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    private static void AssertSame(Volume cpu, Volume device, string what)
    {
        Assert.Equal(cpu.Shape, device.Shape);
        Assert.Equal(cpu.Frames, device.Frames);
        Assert.True(cpu.Affine.ApproximatelyEquals(device.Affine, 1e-9), $"{what}: affine {device.Affine} vs CPU {cpu.Affine}");
        var a = cpu.Data.ToArray();
        var b = device.Data.ToArray();
        var stats = cpu.GetStatistics();
        var tolerance = 1e-5 * Math.Max(1, stats.Max - stats.Min);
        double worst = 0;
        for (var n = 0; n < a.Length; n++)
        {
            worst = Math.Max(worst, Math.Abs(a[n] - b[n]));
        }

        Assert.True(worst <= tolerance, $"{what}: device and CPU differ by {worst} (tolerance {tolerance})");
    }
}
