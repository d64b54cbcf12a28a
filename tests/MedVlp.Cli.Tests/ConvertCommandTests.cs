using MedVlp.Testing;
using MedVlp.Volumes;
using MedVlp.Volumes.IO;

namespace MedVlp.Cli.Tests;

/// <summary><c>medvlp convert</c>: any readable volume to NIfTI, geometry and values preserved.</summary>
public sealed class ConvertCommandTests
{
    [Theory]
    [InlineData("itk/BrainProtonDensitySliceBorder20DirectionPlus30.mhd", "out.nii.gz")]
    [InlineData("itk/BrainT1SliceBorder20DirectionPlus30.nhdr", "out.nii")]
    [InlineData("itk/itkBrainSliceComplex.mha", "out.nii.gz")]
    [InlineData("nibabel/example_nifti2.nii.gz", "out.nii")]
    [InlineData("nibabel/functional.nii", "out.hdr")]
    public void ConvertedFileReadsBackAsTheSource(string source, string name)
    {
        using var tmp = TestData.NewTempFolder();
        var output = tmp.File(name);
        var result = CliRunner.Run("convert", TestData.File(source), output);
        Assert.True(result.ExitCode == 0, result.StdErr);
        var expected = VolumeReader.Read(TestData.File(source));
        var actual = VolumeReader.Read(output);
        Assert.Equal(expected.Shape, actual.Shape);
        Assert.Equal(expected.FrameShape, actual.FrameShape);
        Assert.True(expected.Affine.ApproximatelyEquals(actual.Affine, 1e-5), $"{expected.Affine} vs {actual.Affine}");
        Assert.True(expected.Data.Span.SequenceEqual(actual.Data.Span));
        Assert.Equal(VoxelDataType.Float32, actual.Metadata.SourceDataType);
    }

    [Fact]
    public void OrientAndOriginalTypeOptions()
    {
        using var tmp = TestData.NewTempFolder();
        var output = tmp.File("lps.nii.gz");
        var result = CliRunner.Run("convert", TestData.File("nibabel/example4d.nii.gz"), output, "--orient", "LPS", "--original-type", "--series", "1.2.3");
        Assert.True(result.ExitCode == 0, result.StdErr);
        var expected = VolumeReader.Read(TestData.File("nibabel/example4d.nii.gz")).Reorient("LPS");
        var actual = VolumeReader.Read(output);
        Assert.Equal("LPS", actual.Orientation);
        Assert.Equal(VoxelDataType.Int16, actual.Metadata.SourceDataType);
        Assert.True(expected.Affine.ApproximatelyEquals(actual.Affine, 1e-5));
        Assert.True(expected.Data.Span.SequenceEqual(actual.Data.Span));
    }

    [Theory]
    [InlineData("nibabel/nifti1.hdr", "out.nii", "nifti1.img")]
    [InlineData("itk/CorpusCallosumMode0.mha", "out.mha", ".nii")]
    public void BadInputOrOutputIsOneLineAndExitCode2(string source, string name, string mentioned)
    {
        using var tmp = TestData.NewTempFolder();
        var result = CliRunner.Run("convert", TestData.File(source), tmp.File(name));
        Assert.Equal(2, result.ExitCode);
        Assert.Contains(mentioned, result.StdErr, StringComparison.Ordinal);
        Assert.Single(result.StdErr.Trim().Split('\n'));
        Assert.False(File.Exists(tmp.File(name)));
    }
}
