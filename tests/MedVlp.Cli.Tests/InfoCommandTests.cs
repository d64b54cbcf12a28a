using System.Text.Json;
using MedVlp.Testing;

namespace MedVlp.Cli.Tests;

/// <summary><c>medvlp info</c> reports what nibabel reports, and fails cleanly on bad input.</summary>
public sealed class InfoCommandTests
{
    public static TheoryData<string> Loadable => [.. NiftiGolden.LoadableImages];

    [Theory]
    [MemberData(nameof(Loadable))]
    public void JsonMatchesNibabel(string file)
    {
        var golden = NiftiGolden.All[file];
        var result = CliRunner.Run("info", TestData.File(file), "--json");
        Assert.True(result.ExitCode == 0, result.StdErr);
        using var doc = JsonDocument.Parse(result.StdOut);
        var json = doc.RootElement;

        var shape = golden.GetProperty("shape").EnumerateArray().Select(x => x.GetInt32()).ToList();
        while (shape.Count < 3)
        {
            shape.Add(1);
        }

        Assert.Equal(shape.Take(3), json.GetProperty("shape").EnumerateArray().Select(x => x.GetInt32()));
        Assert.Equal(golden.GetProperty("frames").GetInt32(), json.GetProperty("frames").GetInt32());
        Assert.Equal(golden.GetProperty("format").GetString(), json.GetProperty("format").GetString());
        Assert.Equal(golden.GetProperty("orientation").GetString(), json.GetProperty("orientation").GetString());
        Assert.Equal(golden.GetProperty("datatype").GetString(), json.GetProperty("datatype").GetString());

        var spacing = NiftiGolden.Doubles(golden.GetProperty("spacing"));
        var actualSpacing = NiftiGolden.Doubles(json.GetProperty("spacing"));
        for (var n = 0; n < 3; n++)
        {
            Assert.Equal(spacing[n], actualSpacing[n], 6);
        }

        var affine = NiftiGolden.Matrix(golden.GetProperty("affine"));
        var actual = NiftiGolden.Matrix(json.GetProperty("affine"));
        Assert.Equal(4, actual.Length);
        for (var r = 0; r < 4; r++)
        {
            Assert.Equal(4, actual[r].Length);
            for (var c = 0; c < 4; c++)
            {
                Assert.True(Math.Abs(affine[r][c] - actual[r][c]) <= 1e-4, $"affine[{r},{c}]: nibabel {affine[r][c]}, medvlp {actual[r][c]}");
            }
        }

        foreach (var key in new[] { "min", "max", "mean" })
        {
            var expected = golden.GetProperty(key).GetDouble();
            var got = json.GetProperty(key).GetDouble();
            Assert.True(Math.Abs(expected - got) <= 1e-6 * Math.Max(1, Math.Abs(expected)), $"{key}: nibabel {expected}, medvlp {got}");
        }
    }

    [Fact]
    public void TableNamesTheOrientation()
    {
        var result = CliRunner.Run("info", TestData.File("nibabel/anatomical.nii"));
        Assert.Equal(0, result.ExitCode);
        Assert.Contains("LAS", result.StdOut, StringComparison.Ordinal);
        Assert.Contains("33 x 41 x 25", result.StdOut, StringComparison.Ordinal);
    }

    [Fact]
    public void MissingFileIsOneLineAndNonZero()
    {
        var result = CliRunner.Run("info", "/nonexistent/scan.nii.gz");
        AssertCleanFailure(result, "scan.nii.gz");
    }

    [Fact]
    public void NonNiftiFileIsOneLineAndNonZero()
    {
        using var temp = TestData.NewTempFolder();
        var path = temp.File("vocab.nii");
        File.Copy(TestData.File("bert/vocab.txt"), path);
        AssertCleanFailure(CliRunner.Run("info", path), "vocab.nii");
    }

    [Fact]
    public void TruncatedGzipIsOneLineAndNonZero()
    {
        using var temp = TestData.NewTempFolder();
        var bytes = File.ReadAllBytes(TestData.File("mricron/ch2.nii.gz"));
        var path = temp.File("truncated.nii.gz");
        File.WriteAllBytes(path, bytes[..(bytes.Length / 3)]);
        AssertCleanFailure(CliRunner.Run("info", path, "--json"), "truncated.nii.gz");
    }

    private static void AssertCleanFailure(CliRunner.Result result, string fileName)
    {
        Assert.NotEqual(0, result.ExitCode);
        var lines = result.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, "expected one line on stderr, got:\n" + result.StdErr);
        Assert.StartsWith("medvlp: error: ", lines[0], StringComparison.Ordinal);
        Assert.Contains(fileName, lines[0], StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", result.StdErr, StringComparison.Ordinal);
        Assert.Equal("", result.StdOut);
    }
}
