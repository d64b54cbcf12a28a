using System.Diagnostics;
using MedVlp.Testing;

namespace MedVlp.Tests.Cli;

/// <summary>Runs the built <c>medvlp</c> CLI as a process and captures its output.</summary>
internal static class CliRunner
{
    public static (int ExitCode, string Stdout, string Stderr) Run(params string[] args)
    {
        // tests/MedVlp.Tests/bin/<Configuration>/<tfm>/ -> samples/MedVlp.Cli/bin/<Configuration>/<tfm>/medvlp.dll
        var tfmDir = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var configuration = tfmDir.Parent!.Name;
        var dll = Path.Combine(TestData.RepoRoot, "samples", "MedVlp.Cli", "bin", configuration, tfmDir.Name, "medvlp.dll");
        Assert.True(File.Exists(dll), $"The CLI was not built at {dll}.");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(dll);
        foreach (var a in args)
        {
            start.ArgumentList.Add(a);
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        Assert.True(process.WaitForExit(120_000), "medvlp did not finish within 2 minutes.");
        return (process.ExitCode, stdout.Result, stderr.Result);
    }
}
