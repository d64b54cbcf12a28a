using System.Diagnostics;

namespace MedVlp.Testing;

/// <summary>Runs the <c>medvlp</c> executable (built next to the test assembly) as a separate process.</summary>
internal static class CliRunner
{
    public sealed record Result(int ExitCode, string StdOut, string StdErr);

    public static Result Run(params string[] args)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "MedVlp.Cli.dll");
        Assert.True(File.Exists(dll), $"{dll} was not built next to the tests");
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(dll);
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        info.Environment["NO_COLOR"] = "1";
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(10)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException("medvlp " + string.Join(' ', args) + " did not finish");
        }

        return new Result(process.ExitCode, stdout.Result, stderr.Result);
    }
}
