using System.Diagnostics;
using MedVlp.Testing;

namespace MedVlp.Cli.Tests;

/// <summary>The command line as a user meets it: its name, short parse errors with suggestions, plain redirected output, DICOM warnings.</summary>
public sealed class CliUsabilityTests
{
    [Fact]
    public void HelpSaysMedvlp()
    {
        var (code, stdout, _) = CliRunner.Run("--help");
        Assert.Equal(0, code);
        Assert.Contains("  medvlp [command] [options]", stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("MedVlp.Cli", stdout, StringComparison.Ordinal);

        (code, stdout, _) = CliRunner.Run("zeroshot", "--help");
        Assert.Equal(0, code);
        Assert.Contains("  medvlp zeroshot <volumes>... [options]", stdout, StringComparison.Ordinal);
        Assert.Contains("out/demo/model", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void AMisspelledOptionIsNamedWithTheNearestOneAndNoHelp()
    {
        var (code, stdout, stderr) = CliRunner.Run("zeroshot", "--modle", "m", "--label", "a=b", "--label", "c=d", "x.nii.gz");
        Assert.Equal(1, code);
        Assert.Equal("", stdout);
        var lines = stderr.Trim().Split('\n');
        Assert.Equal("medvlp: error: unknown option '--modle'; did you mean --model?", lines[0]);
        Assert.Equal(3, lines.Length);   // the error, the usage line, where to find help
        Assert.Equal("Usage: medvlp zeroshot --model <model> <volumes>... [options]", lines[1]); // --label is optional: zeroshot --generative needs none
        Assert.Equal("Run 'medvlp zeroshot --help' for more.", lines[2]);
    }

    [Fact]
    public void AMissingRequiredOptionAndAnUnknownCommandAreShortErrors()
    {
        var (code, _, stderr) = CliRunner.Run("zeroshot", "--label", "a=b", "x.nii.gz");
        Assert.Equal(1, code);
        Assert.StartsWith("medvlp: error: Option '--model' is required.", stderr, StringComparison.Ordinal);
        Assert.Equal(3, stderr.Trim().Split('\n').Length);

        (code, _, stderr) = CliRunner.Run("infoo", "scan.nii");
        Assert.Equal(1, code);
        Assert.StartsWith("medvlp: error: Unrecognized command or argument 'infoo'; did you mean 'info'?", stderr, StringComparison.Ordinal);

        (code, _, stderr) = CliRunner.Run("info", "--jsn", TestData.File("mricron/ch2.nii.gz"));
        Assert.Equal(1, code);
        Assert.StartsWith("medvlp: error: unknown option '--jsn'; did you mean --json?", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void NegativeValuesAreNotTakenForOptions()
    {
        using var folder = TestData.NewTempFolder();
        var output = folder.File("out.nii.gz");
        var (code, _, stderr) = CliRunner.Run("preprocess", TestData.File("mricron/ch2.nii.gz"), output, "--window", "-1000,1000", "--rescale", "-1,1", "--size", "32");
        Assert.True(code == 0, stderr);
        Assert.True(File.Exists(output));
    }

    [Fact]
    public void RedirectedOutputHasNoEscapeCodesEvenOnAColourTerminal()
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "MedVlp.Cli.dll"));
        info.ArgumentList.Add("info");
        info.ArgumentList.Add(TestData.File("mricron/ch2.nii.gz"));
        info.Environment.Remove("NO_COLOR");
        info.Environment["TERM"] = "xterm-256color";
        info.Environment["COLORTERM"] = "truecolor";
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEnd();
        var stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, stderr);
        Assert.Contains("181 x 217 x 181", stdout, StringComparison.Ordinal);
        Assert.DoesNotContain('\u001b', stdout);
        Assert.DoesNotContain('\u001b', stderr);
    }

    [Fact]
    public void ADicomFolderWithForeignFilesIsReadWithOneWarningPerFileAndStrictFails()
    {
        using var folder = TestData.NewTempFolder();
        foreach (var f in Directory.GetFiles(TestData.File("pydicom/CT5N")))
        {
            File.Copy(f, folder.File(Path.GetFileName(f)));
        }

        var jpeg = folder.File("jpeg.dcm");
        File.Copy(TestData.File("pydicom/JPEG2000.dcm"), jpeg);

        var (code, stdout, stderr) = CliRunner.Run("info", folder.Path, "--json");
        Assert.True(code == 0, stderr);
        Assert.Contains("\"format\":\"dicom\"", stdout, StringComparison.Ordinal);
        var warning = Assert.Single(stderr.Trim().Split('\n'));
        Assert.Equal($"medvlp: warning: skipped {jpeg}: unsupported transfer syntax 1.2.840.10008.1.2.4.91 (JPEG 2000 Image Compression); MedVlp decodes uncompressed, deflated and RLE Lossless DICOM.", warning);

        (code, _, stderr) = CliRunner.Run("info", folder.Path, "--strict");
        Assert.Equal(2, code);
        var error = Assert.Single(stderr.Trim().Split('\n'));
        Assert.StartsWith($"medvlp: error: {folder.Path}: 1 file(s) are not DICOM images MedVlp decodes", error, StringComparison.Ordinal);
        Assert.Equal(1, error.Split(jpeg).Length - 1);
    }
}
