using MedVlp.Testing;
using MedVlp.Volumes;
using MedVlp.Volumes.IO;
using MedVlp.Volumes.Transforms;

namespace MedVlp.Cli.Tests;

/// <summary><c>medvlp preprocess</c> writes the pipeline's result as NIfTI with its true affine.</summary>
public sealed class PreprocessCommandTests
{
    [Fact]
    public void MedBlipPresetOnCh2Gives224CubedInZeroOne()
    {
        using var dir = TestData.NewTempFolder();
        var output = dir.File("out.nii.gz");
        var result = CliRunner.Run("preprocess", TestData.File("mricron/ch2.nii.gz"), output, "--preset", "medblip", "--save-pipeline", dir.File("p.json"));
        Assert.True(result.ExitCode == 0, result.StdErr);
        var volume = VolumeReader.Read(output);
        Assert.Equal(new VolumeShape(224, 224, 224), volume.Shape);
        var stats = volume.GetStatistics();
        Assert.Equal(0, stats.Min);
        Assert.InRange(stats.Max, 0.9, 1); // the maximum voxel is interpolated, as in MedBLIP's code
        var expected = TransformPresets.MedBlip().Apply(VolumeReader.Read(TestData.File("mricron/ch2.nii.gz")));
        Assert.True(expected.Affine.ApproximatelyEquals(volume.Affine, 1e-4), $"{volume.Affine} vs {expected.Affine}");
        Assert.Equal(expected.Data.ToArray(), volume.Data.ToArray());
        Assert.Equal(TransformPresets.MedBlip().ToJson(), File.ReadAllText(dir.File("p.json")));
    }

    [Fact]
    public void ColipriPresetGives192CubedSarTwoMillimetres()
    {
        using var dir = TestData.NewTempFolder();
        var output = dir.File("out.nii.gz");
        var result = CliRunner.Run("preprocess", TestData.File("nibabel/anatomical.nii"), output, "--preset", "colipri");
        Assert.True(result.ExitCode == 0, result.StdErr);
        var volume = VolumeReader.Read(output);
        Assert.Equal(new VolumeShape(192, 192, 192), volume.Shape);
        Assert.Equal("SAR", volume.Orientation);
        for (var a = 0; a < 3; a++)
        {
            Assert.Equal(2, volume.Spacing[a], 5);
        }

        var stats = volume.GetStatistics();
        Assert.InRange(stats.Min, -1, 1);
        Assert.InRange(stats.Max, -1, 1);
    }

    [Fact]
    public void ColipriPresetOnACtSeries()
    {
        using var dir = TestData.NewTempFolder();
        var output = dir.File("ct.nii.gz");
        var series = TestData.File("pydicom/CT5N");
        var result = CliRunner.Run("preprocess", series, output, "--preset", "colipri");
        Assert.True(result.ExitCode == 0, result.StdErr);
        var volume = VolumeReader.Read(output);
        Assert.Equal(new VolumeShape(192, 192, 192), volume.Shape);
        Assert.Equal("SAR", volume.Orientation);
        for (var a = 0; a < 3; a++)
        {
            Assert.Equal(2, volume.Spacing[a], 5);
        }

        var stats = volume.GetStatistics();
        Assert.True(stats.Min >= -1 && stats.Max <= 1, $"values [{stats.Min}, {stats.Max}]");
        Assert.True(stats.Min < -0.5, "the CT's air (about -900 HU) maps near -1");
        var expected = TransformPresets.Colipri().Apply(VolumeReader.Read(series));
        Assert.True(expected.Affine.ApproximatelyEquals(volume.Affine, 1e-4), $"{volume.Affine} vs {expected.Affine}");
        Assert.Equal(expected.Data.ToArray(), volume.Data.ToArray());
    }

    [Fact]
    public void SingleStepsBuildAPipeline()
    {
        using var dir = TestData.NewTempFolder();
        var output = dir.File("out.nii");
        var result = CliRunner.Run("preprocess", TestData.File("nibabel/anatomical.nii"), output, "--orient", "LPS", "--spacing", "3,2,2.5", "--window", "0,800", "--rescale", "-1,1", "--size", "20,30,12", "--save-pipeline", dir.File("p.json"));
        Assert.True(result.ExitCode == 0, result.StdErr);
        var volume = VolumeReader.Read(output);
        Assert.Equal(new VolumeShape(20, 30, 12), volume.Shape);
        Assert.Equal("LPS", volume.Orientation);
        var pipeline = TransformPipeline.Load(dir.File("p.json"));
        var expected = pipeline.Apply(VolumeReader.Read(TestData.File("nibabel/anatomical.nii")));
        Assert.Equal(expected.Data.ToArray(), volume.Data.ToArray());
        Assert.Equal(["reorient", "resample_to_spacing", "clamp", "scale_intensity_range", "crop_or_pad"], pipeline.Transforms.Select(t => TransformRegistry.NameOf(t.GetType())));
    }

    [Theory]
    [InlineData("--preset", "nope", "Unknown preprocessing preset \"nope\"")]
    [InlineData("--window", "1", "--window: expected 2 comma-separated numbers")]
    [InlineData("--spacing", "x", "--spacing: \"x\" is not a number")]
    [InlineData("--orient", "RRR", "Axis codes")]
    public void BadOptionsFailWithOneLine(string option, string value, string expected)
    {
        using var dir = TestData.NewTempFolder();
        var result = CliRunner.Run("preprocess", TestData.File("nibabel/anatomical.nii"), dir.File("o.nii"), option, value);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains(expected, result.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public void PresetAndStepsAreExclusive()
    {
        using var dir = TestData.NewTempFolder();
        var result = CliRunner.Run("preprocess", TestData.File("nibabel/anatomical.nii"), dir.File("o.nii"), "--preset", "medblip", "--size", "10");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("exactly one of", result.StdErr, StringComparison.Ordinal);
    }
}
