using System.Diagnostics;

namespace MedVlp.Tests.Distributed;

/// <summary>Starts the distributed test worker (built next to the tests) alone or under Open MPI's <c>mpirun</c>.</summary>
internal static class MpiJob
{
    public sealed record Result(int ExitCode, string StdOut, string StdErr, TimeSpan Elapsed);

    public static string WorkerDll
    {
        get
        {
            var dll = Path.Combine(AppContext.BaseDirectory, "MedVlp.Distributed.Worker.dll");
            Assert.True(File.Exists(dll), $"{dll} was not built next to the tests");
            return dll;
        }
    }

    /// <summary>Open MPI's launcher; scripts/test.sh installs Debian's openmpi-bin where it is missing.</summary>
    public static string MpiRun
    {
        get
        {
            foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin").Split(':'))
            {
                var candidate = Path.Combine(dir, "mpirun");
                if (File.Exists(candidate))
                {
                    return candidate;
                }
            }

            throw new FileNotFoundException("mpirun is not installed: run scripts/install-mpi.sh (apt-get install openmpi-bin libopenmpi-dev), as scripts/test.sh does.");
        }
    }

    /// <summary>Runs <c>mpirun -np <paramref name="ranks"/> dotnet worker.dll args</c> (0 ranks: the worker alone, without mpirun).</summary>
    public static Result Run(int ranks, string[] args, TimeSpan? timeout = null, Action<Process>? whileRunning = null)
    {
        var info = ranks == 0 ? new ProcessStartInfo("dotnet") : new ProcessStartInfo(MpiRun);
        if (ranks > 0)
        {
            // --oversubscribe: more ranks than this machine's 2 cores; --bind-to none: do not pin ranks on a shared machine.
            foreach (var a in (string[])["-np", ranks.ToString(System.Globalization.CultureInfo.InvariantCulture), "--oversubscribe", "--bind-to", "none", "dotnet"])
            {
                info.ArgumentList.Add(a);
            }

            // Open MPI refuses to run as root unless told (CI runs as root).
            info.Environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1";
            info.Environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1";
        }
        else
        {
            foreach (var name in (string[])["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMIX_SIZE", "PMI_SIZE"])
            {
                info.Environment.Remove(name);
            }
        }

        info.ArgumentList.Add(WorkerDll);
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        info.RedirectStandardOutput = true;
        info.RedirectStandardError = true;
        info.RedirectStandardInput = true;
        info.UseShellExecute = false;
        var clock = Stopwatch.StartNew();
        using var process = Process.Start(info)!;
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        whileRunning?.Invoke(process);
        if (!process.WaitForExit(timeout ?? TimeSpan.FromMinutes(3)))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            throw new TimeoutException($"mpirun -np {ranks} worker {string.Join(' ', args)} did not finish in time.\n{stdout.Result}\n{stderr.Result}");
        }

        process.WaitForExit();
        return new Result(process.ExitCode, stdout.Result, stderr.Result, clock.Elapsed);
    }

    /// <summary>Reads the weights file the worker's rank 0 writes: name, count, float32 values per parameter.</summary>
    public static Dictionary<string, float[]> ReadWeights(string path)
    {
        using var reader = new BinaryReader(File.OpenRead(path));
        var count = reader.ReadInt32();
        var weights = new Dictionary<string, float[]>(StringComparer.Ordinal);
        for (var i = 0; i < count; i++)
        {
            var name = reader.ReadString();
            var values = new float[reader.ReadInt32()];
            for (var k = 0; k < values.Length; k++)
            {
                values[k] = reader.ReadSingle();
            }

            weights[name] = values;
        }

        return weights;
    }

    public static double MaxDifference(Dictionary<string, float[]> a, Dictionary<string, float[]> b)
    {
        Assert.Equal(a.Keys.Order(StringComparer.Ordinal), b.Keys.Order(StringComparer.Ordinal));
        var max = 0.0;
        foreach (var (name, values) in a)
        {
            Assert.Equal(values.Length, b[name].Length);
            for (var i = 0; i < values.Length; i++)
            {
                max = Math.Max(max, Math.Abs(values[i] - b[name][i]));
            }
        }

        return max;
    }
}
