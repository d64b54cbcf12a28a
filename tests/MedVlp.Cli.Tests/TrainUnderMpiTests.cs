using System.Diagnostics;
using MedVlp.Testing;

namespace MedVlp.Cli.Tests;

/// <summary><c>mpirun -np 2 medvlp train ...</c>: the unchanged command trains data-parallel; rank 0 alone writes.</summary>
public sealed class TrainUnderMpiTests
{
    [Fact]
    public async Task MpirunWithTwoRanksTrainsARecipeAndOnlyRankZeroWrites()
    {
        using var dir = TestData.NewTempFolder();
        var output = dir.File("run");
        var info = new ProcessStartInfo("mpirun") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        foreach (var a in (string[])["-np", "2", "--oversubscribe", "--bind-to", "none", "dotnet", Path.Combine(AppContext.BaseDirectory, "MedVlp.Cli.dll"),
            "train", "--recipe", "clip3d-test", "--synthetic", "24", "--steps", "3", "--batch", "4", "--checkpoint-every", "1",
            "--out", output, "--vocab", TestData.File("bert/vocab.txt")])
        {
            info.ArgumentList.Add(a);
        }

        info.Environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1"; // CI runs as root
        info.Environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1";
        info.Environment["NO_COLOR"] = "1";
        using var process = Process.Start(info)!;
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail("mpirun -np 2 medvlp train did not finish");
        }

        var (output1, error1) = (await stdout, await stderr);
        Assert.True(process.ExitCode == 0, output1 + error1);
        Assert.Contains("2 ranks (mpi), global batch 8 = 2 x 4", output1, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(output, "model", "model.safetensors")));

        // One writer: three step records (not six, not interleaved) and the checkpoints rank 0 kept.
        var steps = File.ReadAllLines(Path.Combine(output, "metrics.jsonl")).Where(l => l.Contains("\"step\"", StringComparison.Ordinal) && !l.Contains("val/", StringComparison.Ordinal)).ToArray();
        Assert.Equal(3, steps.Length);
        Assert.Contains("step-00000003.ckpt", Directory.GetFiles(Path.Combine(output, "checkpoints")).Select(Path.GetFileName));
    }
}
