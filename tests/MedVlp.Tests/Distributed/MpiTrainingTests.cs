using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using MedVlp.Testing;

namespace MedVlp.Tests.Distributed;

/// <summary>Real multi-process jobs: Open MPI's mpirun starts the worker once per rank on this machine.</summary>
[Collection(nameof(MpiJobs))]
public sealed partial class MpiTrainingTests
{
    private static string Vocabulary => TestData.File("bert/vocab.txt");

    [Theory]
    [InlineData(0)]
    [InlineData(2)]
    [InlineData(3)]
    public void EveryCollectiveGivesTheExpectedValuesOnEveryRank(int ranks)
    {
        var result = MpiJob.Run(ranks, ["collectives"]);
        Assert.True(result.ExitCode == 0, result.StdOut + result.StdErr);
        var world = Math.Max(ranks, 1);
        for (var r = 0; r < world; r++)
        {
            Assert.Contains($"collectives ok: rank {r} of {world} ({(ranks == 0 ? "single" : "mpi")})", result.StdOut, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void TwoRanksWithBatchBTrainTheSameWeightsAsOneProcessWithBatch2B()
    {
        using var temp = TestData.NewTempFolder();
        var single = Path.Combine(temp.Path, "single.bin");
        var two = Path.Combine(temp.Path, "two.bin");
        var unscaled = Path.Combine(temp.Path, "unscaled.bin");
        string[] common = ["train", "--vocab", Vocabulary, "--steps", "5", "--pairs", "24"];

        var one = MpiJob.Run(0, [.. common, "--batch", "8", "--out", single]);
        Assert.True(one.ExitCode == 0, one.StdOut + one.StdErr);
        var dp = MpiJob.Run(2, [.. common, "--batch", "4", "--out", two]);
        Assert.True(dp.ExitCode == 0, dp.StdOut + dp.StdErr);

        // Rank 0 alone reports and writes; the losses of the global batch agree step by step.
        Assert.Equal(5, Losses(dp.StdOut).Length);
        Assert.Equal(Losses(one.StdOut), Losses(dp.StdOut), (a, b) => Math.Abs(a - b) < 1e-5);
        var difference = MpiJob.MaxDifference(MpiJob.ReadWeights(single), MpiJob.ReadWeights(two));
        Assert.True(difference < 1e-5, $"max |w_single - w_2ranks| = {difference}");

        // open_clip's plain local gradient (no world-size factor) is not equivalent: the check can fail.
        var local = MpiJob.Run(2, [.. common, "--batch", "4", "--out", unscaled, "--gather-gradient", "local"]);
        Assert.True(local.ExitCode == 0, local.StdOut + local.StdErr);
        var off = MpiJob.MaxDifference(MpiJob.ReadWeights(single), MpiJob.ReadWeights(unscaled));
        Assert.True(off > 1e-5, $"unscaled local gradients should differ; max difference {off}");
    }

    [Fact]
    public void LocalLossWithADifferentiableGatherEqualsTheGlobalLossOnOneProcess()
    {
        // open_clip's scalable setting (--local-loss --gather-with-grad): each rank scores its rows against all columns,
        // the gather's backward all-reduces the feature gradients.
        using var temp = TestData.NewTempFolder();
        var single = Path.Combine(temp.Path, "single.bin");
        var two = Path.Combine(temp.Path, "two.bin");
        string[] common = ["train", "--vocab", Vocabulary, "--steps", "4", "--pairs", "16", "--local-loss", "true"];
        var one = MpiJob.Run(0, [.. common, "--batch", "8", "--out", single]);
        Assert.True(one.ExitCode == 0, one.StdOut + one.StdErr);
        var dp = MpiJob.Run(2, [.. common, "--batch", "4", "--out", two, "--gather-gradient", "allreduce"]);
        Assert.True(dp.ExitCode == 0, dp.StdOut + dp.StdErr);
        var difference = MpiJob.MaxDifference(MpiJob.ReadWeights(single), MpiJob.ReadWeights(two));
        Assert.True(difference < 1e-5, $"max |w_single - w_2ranks| = {difference}");
    }

    [Fact]
    public void AKilledRankEndsTheJobWithAnErrorNamingTheRank()
    {
        using var temp = TestData.NewTempFolder();
        var killedAt = TimeSpan.Zero;
        var clock = Stopwatch.StartNew();
        var result = MpiJob.Run(2, ["train", "--vocab", Vocabulary, "--steps", "1000000", "--pairs", "16", "--batch", "4", "--pid-dir", temp.Path],
            TimeSpan.FromMinutes(2), process =>
            {
                var pidFile = Path.Combine(temp.Path, "rank1.pid");
                var deadline = DateTime.UtcNow.AddMinutes(1);
                while (!File.Exists(pidFile) || new FileInfo(pidFile).Length == 0)
                {
                    Assert.False(process.HasExited, "the job ended before rank 1 trained a step");
                    Assert.True(DateTime.UtcNow < deadline, "rank 1 never wrote its pid");
                    Thread.Sleep(50);
                }

                var pid = int.Parse(File.ReadAllText(pidFile), CultureInfo.InvariantCulture);
                using var rank1 = Process.GetProcessById(pid);
                rank1.Kill(); // SIGKILL, as the OOM killer or a lost node would
                killedAt = clock.Elapsed;
            });

        Assert.NotEqual(0, result.ExitCode);
        var afterKill = clock.Elapsed - killedAt;
        Assert.True(afterKill < TimeSpan.FromSeconds(30), $"the job took {afterKill} to end after rank 1 was killed");
        Assert.Contains("process rank 1", result.StdOut + result.StdErr, StringComparison.Ordinal); // Open MPI: "mpirun noticed that process rank 1 ... exited on signal 9 (Killed)."
    }

    [Fact]
    public void TheTrainerOnTwoRanksWithBatchBTrainsTheWeightsOfOneProcessWithBatch2B()
    {
        // Through the library's Trainer: TrainerOptions.ProcessGroup, sharded PreparedTrainingData, the recipe's gatherer.
        using var temp = TestData.NewTempFolder();
        string[] common = ["trainer", "--vocab", Vocabulary, "--steps", "4", "--pairs", "16"];
        var one = MpiJob.Run(0, [.. common, "--batch", "8", "--out", Path.Combine(temp.Path, "one.bin")]);
        Assert.True(one.ExitCode == 0, one.StdOut + one.StdErr);
        var two = MpiJob.Run(2, [.. common, "--batch", "4", "--out", Path.Combine(temp.Path, "two.bin")]);
        Assert.True(two.ExitCode == 0, two.StdOut + two.StdErr);
        Assert.Equal(4, Losses(two.StdOut).Length);
        Assert.Equal(Losses(one.StdOut), Losses(two.StdOut), (a, b) => Math.Abs(a - b) < 1e-5);
        var difference = MpiJob.MaxDifference(MpiJob.ReadWeights(Path.Combine(temp.Path, "one.bin")), MpiJob.ReadWeights(Path.Combine(temp.Path, "two.bin")));
        Assert.True(difference < 1e-5, $"max |w_single - w_2ranks| = {difference}");
    }

    [Fact]
    public void AJobResumedAfterARankWasKilledEndsWithTheWeightsOfTheUninterruptedRun()
    {
        using var temp = TestData.NewTempFolder();
        var uninterrupted = Path.Combine(temp.Path, "a");
        var interrupted = Path.Combine(temp.Path, "b");
        string[] common = ["trainer", "--vocab", Vocabulary, "--steps", "6", "--pairs", "16", "--batch", "4", "--checkpoint-every", "2"];

        var full = MpiJob.Run(2, [.. common, "--out-dir", uninterrupted, "--out", Path.Combine(temp.Path, "a.bin")]);
        Assert.True(full.ExitCode == 0, full.StdOut + full.StdErr);

        // Rank 1 SIGKILLs itself after step 5; rank 0 alone wrote the checkpoints of steps 2 and 4.
        var killed = MpiJob.Run(2, [.. common, "--out-dir", interrupted, "--die-rank", "1", "--die-step", "5"]);
        Assert.NotEqual(0, killed.ExitCode);
        Assert.Contains("process rank 1", killed.StdOut + killed.StdErr, StringComparison.Ordinal);
        Assert.Contains("step-00000004.ckpt", Directory.GetFiles(Path.Combine(interrupted, "checkpoints")).Select(Path.GetFileName));

        var otherWorld = MpiJob.Run(3, [.. common, "--out-dir", interrupted, "--resume", "true"]);
        Assert.Equal(3, otherWorld.ExitCode);
        Assert.Contains("resume with the same world size", otherWorld.StdErr, StringComparison.Ordinal);

        var resumed = MpiJob.Run(2, [.. common, "--out-dir", interrupted, "--resume", "true", "--out", Path.Combine(temp.Path, "b.bin")]);
        Assert.True(resumed.ExitCode == 0, resumed.StdOut + resumed.StdErr);
        Assert.Equal([5.0, 6.0], StepNumbers(resumed.StdOut));
        Assert.Equal(File.ReadAllBytes(Path.Combine(temp.Path, "a.bin")), File.ReadAllBytes(Path.Combine(temp.Path, "b.bin")));
    }

    [Fact]
    public void AnExceptionOnOneRankAbortsTheWholeJob()
    {
        var result = MpiJob.Run(2, ["train", "--vocab", Vocabulary, "--steps", "1000000", "--pairs", "16", "--batch", "4", "--fail-rank", "1", "--fail-step", "2"],
            TimeSpan.FromMinutes(2));
        Assert.Equal(3, result.ExitCode);
        Assert.Contains("medvlp rank 1 of 2 aborts the job (exit code 3): InvalidOperationException: injected failure at step 2", result.StdErr, StringComparison.Ordinal);
    }

    private static double[] Losses(string output) => StepLoss().Matches(output)
        .Select(m => double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture))
        .ToArray();

    private static double[] StepNumbers(string output) => StepLoss().Matches(output)
        .Select(m => double.Parse(m.Groups[0].Value.Split(' ')[1], CultureInfo.InvariantCulture))
        .ToArray();

    [GeneratedRegex(@"step \d+ loss (\S+)")]
    private static partial Regex StepLoss();
}

/// <summary>mpirun jobs use both cores: they run one at a time.</summary>
[CollectionDefinition(nameof(MpiJobs), DisableParallelization = true)]
public sealed class MpiJobs;
