using System.Text.Json;
using MedVlp.Testing;

namespace MedVlp.Cli.Tests;

/// <summary><c>medvlp info</c> on DICOM files and series folders.</summary>
public sealed class InfoDicomTests
{
    [Fact]
    public void InfoOnASeriesFolderReportsTheAssembledVolume()
    {
        var (code, stdout, stderr) = CliRunner.Run("info", TestData.File("pydicom/CT5N"), "--json");
        Assert.True(code == 0, stderr);
        using var doc = JsonDocument.Parse(stdout);
        var root = doc.RootElement;
        Assert.Equal("dicom", root.GetProperty("format").GetString());
        Assert.Equal([16, 16, 5], root.GetProperty("shape").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal(2.5, root.GetProperty("spacing")[2].GetDouble(), 1e-4);
        Assert.Equal("int16", root.GetProperty("datatype").GetString());
    }

    [Fact]
    public void InfoOnASingleDicomFilePrintsATable()
    {
        var (code, stdout, stderr) = CliRunner.Run("info", TestData.File("pydicom/CT_small.dcm"));
        Assert.True(code == 0, stderr);
        Assert.Contains("dicom", stdout, StringComparison.Ordinal);
        Assert.Contains("128 x 128 x 1", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void InfoOnACompressedFileFailsWithOneClearLine()
    {
        var path = TestData.File("pydicom/JPEG2000.dcm");
        var (code, _, stderr) = CliRunner.Run("info", path);
        Assert.Equal(2, code);
        Assert.Contains("unsupported transfer syntax 1.2.840.10008.1.2.4.91 (JPEG 2000 Image Compression)", stderr, StringComparison.Ordinal);
        Assert.Single(stderr.Trim().Split('\n'));
    }

    [Fact]
    public void InfoOnAFolderOfSeveralSeriesAsksForOneAndSeriesChoosesIt()
    {
        using var temp = TestData.NewTempFolder();
        foreach (var f in Directory.GetFiles(TestData.File("pydicom/CT5N")))
        {
            File.Copy(f, temp.File(Path.GetFileName(f)));
        }

        File.Copy(TestData.File("pydicom/MR_small.dcm"), temp.File("mr.dcm"));
        var (code, _, stderr) = CliRunner.Run("info", temp.Path, "--json");
        Assert.Equal(2, code);
        Assert.Contains("holds 2 series", stderr, StringComparison.Ordinal);
        Assert.Contains("--series", stderr, StringComparison.Ordinal);

        const string ctSeries = "1.3.6.1.4.1.5962.1.1.0.0.0.1194734704.16302.0.6";
        Assert.Contains(ctSeries, stderr, StringComparison.Ordinal);
        var (code2, stdout2, stderr2) = CliRunner.Run("info", temp.Path, "--json", "--series", ctSeries);
        Assert.True(code2 == 0, stderr2);
        using var doc = JsonDocument.Parse(stdout2);
        Assert.Equal(5, doc.RootElement.GetProperty("shape")[2].GetInt32());
    }
}
