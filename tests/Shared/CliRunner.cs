using System.Diagnostics;

namespace MedVlp.Testing;

/// <summary>Runs the <c>medvlp</c> executable (built next to the test assembly) as a separate process.</summary>
internal static class CliRunner
{
    public sealed record Result(int ExitCode, string StdOut, string StdErr);

    public static Result Run(params string[] args) => Run(TimeSpan.FromMinutes(10), null, args);

    /// <summary>Runs with a time limit (the process tree is killed after it) and extra environment variables.</summary>
    public static Result Run(TimeSpan timeout, IReadOnlyDictionary<string, string>? environment, params string[] args)
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
        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[key] = value;
        }

        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException("medvlp " + string.Join(' ', args) + " did not finish");
        }

        return new Result(process.ExitCode, stdout.Result, stderr.Result);
    }
}
