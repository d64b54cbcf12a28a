using System.Diagnostics;
using System.Text.Json.Nodes;
using MedVlp.Data;
using MedVlp.Testing;

namespace MedVlp.Cli.Tests;

/// <summary><c>medvlp train</c>: recipes, manifests from <c>medvlp synth</c>, clear recipe errors, and exact resume after real SIGKILLs.</summary>
public sealed class TrainCommandTests
{
    private static readonly string[] Tiny = ["train", "--recipe", "clip3d-test", "--synthetic", "24", "--steps", "10", "--batch", "4", "--checkpoint-every", "1", "--seed", "3"];

    [Fact]
    public void ListShowsTheBuiltInRecipes()
    {
        var result = CliRunner.Run("train", "--list");
        Assert.True(result.ExitCode == 0, result.StdErr);
        foreach (var name in new[] { "clip3d-demo", "clip3d-test", "clip3d-siglip-staged", "clip3d-sgdr" })
        {
            Assert.Contains(name, result.StdOut, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void ColipriTrainsOnItsChestCtsAroundAFrozenPretrainedTextModel()
    {
        // The real all-MiniLM-L6-v2 export as COLIPRI's text encoder, from `medvlp train --synthetic` and from the demo.
        using var dir = TestData.NewTempFolder();
        var train = CliRunner.Run("train", "--recipe", "colipri-demo", "--synthetic", "12", "--steps", "2", "--batch", "4", "--out", dir.File("run"),
            "--text-model", TestData.File("minilm/model.onnx"));
        Assert.True(train.ExitCode == 0, train.StdErr + train.StdOut);
        Assert.Contains("frozen text model", train.StdOut, StringComparison.Ordinal);
        Assert.Contains("val/zero_shot_macro_auroc", File.ReadAllText(dir.File("run/metrics.jsonl")), StringComparison.Ordinal);
        var config = JsonNode.Parse(File.ReadAllText(dir.File("run/model/config.json")))!;
        Assert.Equal(384, config["model"]!["text"]!["hidden_size"]!.GetValue<int>());

        var demo = CliRunner.Run("demo", "--arch", "colipri", "--train", "8", "--test", "4", "--steps", "2", "--batch", "4", "--out", dir.File("demo"),
            "--text-model", TestData.File("minilm/model.onnx"));
        Assert.True(demo.ExitCode == 0, demo.StdErr + demo.StdOut);
        Assert.Contains("held-out zero-shot macro AUROC", demo.StdOut, StringComparison.Ordinal);
        Assert.Contains("generated 12 volumes", demo.StdOut, StringComparison.Ordinal); // 8 training (prepared, then released) + 4 held out
        var both = CliRunner.Run("demo", "--arch", "colipri", "--vocab", TestData.File("bert/vocab.txt"), "--text-model", TestData.File("minilm/model.onnx"), "--out", dir.File("x"));
        Assert.NotEqual(0, both.ExitCode);
        Assert.Contains("exclude each other", both.StdErr + both.StdOut, StringComparison.Ordinal);
    }

    [Fact]
    public void TrainsOnTheManifestThatSynthWrites()
    {
        using var dir = TestData.NewTempFolder();
        var synth = CliRunner.Run("synth", "--out", dir.File("data"), "--count", "14", "--seed", "2", "--val-fraction", "0.25");
        Assert.True(synth.ExitCode == 0, synth.StdErr);
        var manifest = Manifest.Load(dir.File("data/manifest.jsonl"), new ManifestOptions { RequireReport = true });
        Assert.Equal(14, manifest.Entries.Count);
        Assert.Equal(3, manifest.Split("val").Count);
        Assert.Equal("CN", manifest.Entries[0].Labels["diagnosis"]);

        var result = CliRunner.Run("train", "--recipe", "clip3d-test", "--manifest", dir.File("data/manifest.jsonl"), "--out", dir.File("run"),
            "--steps", "3", "--batch", "4", "--accumulate", "2", "--vocab", TestData.File("bert/vocab.txt"));
        Assert.True(result.ExitCode == 0, result.StdErr + result.StdOut);
        Assert.Contains("step 3/3", result.StdOut, StringComparison.Ordinal);
        Assert.Contains("val/loss", result.StdOut, StringComparison.Ordinal);
        Assert.True(File.Exists(dir.File("run/model/model.safetensors")));
        Assert.True(File.Exists(dir.File("run/plots/loss-total.png")));
        Assert.Equal(4, File.ReadAllLines(dir.File("run/metrics.jsonl")).Length); // 3 steps + the final evaluation
    }

    [Fact]
    public void TheOnDiskCacheFillsOnceAndLeavesTheTrainedWeightsUnchanged()
    {
        using var dir = TestData.NewTempFolder();
        var synth = CliRunner.Run("synth", "--out", dir.File("data"), "--count", "10", "--seed", "4", "--val-fraction", "0.2");
        Assert.True(synth.ExitCode == 0, synth.StdErr);
        string[] Train(string run, params string[] extra) =>
            ["train", "--recipe", "clip3d-test", "--manifest", dir.File("data/manifest.jsonl"), "--out", dir.File(run), "--steps", "4", "--batch", "4",
                "--vocab", TestData.File("bert/vocab.txt"), .. extra];

        var plain = CliRunner.Run(Train("plain"));
        Assert.True(plain.ExitCode == 0, plain.StdErr + plain.StdOut);
        var first = CliRunner.Run(Train("cached", "--cache", dir.File("cache")));
        Assert.True(first.ExitCode == 0, first.StdErr + first.StdOut);
        var cached = Directory.GetFiles(dir.File("cache"), "*", SearchOption.AllDirectories);
        Assert.True(cached.Length >= 10, $"{cached.Length} files in the cache for 10 volumes");
        var written = cached.ToDictionary(f => f, File.GetLastWriteTimeUtc);
        var again = CliRunner.Run(Train("again", "--cache", dir.File("cache")));
        Assert.True(again.ExitCode == 0, again.StdErr + again.StdOut);

        // Same batches, so the same weights; the second run read the cache without rewriting it.
        var weights = File.ReadAllBytes(dir.File("plain/model/model.safetensors"));
        Assert.Equal(weights, File.ReadAllBytes(dir.File("cached/model/model.safetensors")));
        Assert.Equal(weights, File.ReadAllBytes(dir.File("again/model/model.safetensors")));
        Assert.All(written, kv => Assert.Equal(kv.Value, File.GetLastWriteTimeUtc(kv.Key)));

        var synthetic = CliRunner.Run("train", "--recipe", "clip3d-test", "--synthetic", "8", "--out", dir.File("s"), "--cache", dir.File("cache"));
        Assert.NotEqual(0, synthetic.ExitCode);
        Assert.Contains("--cache applies to --manifest runs", synthetic.StdErr + synthetic.StdOut, StringComparison.Ordinal);
    }

    [Fact]
    public void ABadRecipeFileEndsInOneMessageNamingTheField()
    {
        using var dir = TestData.NewTempFolder();
        File.WriteAllText(dir.File("r.json"), """{ "name": "mine", "schedule": { "type": "cosine_restarts", "first_cycle": 0 } }""");
        var result = CliRunner.Run("train", "--recipe", dir.File("r.json"), "--synthetic", "8", "--out", dir.File("run"), "--vocab", TestData.File("bert/vocab.txt"));
        Assert.Equal(2, result.ExitCode);
        var line = Assert.Single(result.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("schedule.first_cycle", line, StringComparison.Ordinal);
        Assert.Contains(dir.File("r.json"), line, StringComparison.Ordinal);
    }

    [Fact]
    public void ARunKilledAtSeveralPointsAndResumedEndsWithTheSameBytesAsAnUninterruptedRun()
    {
        using var dir = TestData.NewTempFolder();
        var vocab = TestData.File("bert/vocab.txt");
        var reference = CliRunner.Run([.. Tiny, "--out", dir.File("reference"), "--vocab", vocab]);
        Assert.True(reference.ExitCode == 0, reference.StdErr + reference.StdOut);

        var run = dir.File("killed");
        string[] args = [.. Tiny, "--out", run, "--vocab", vocab];
        var checkpoints = Path.Combine(run, "checkpoints");

        // Every checkpoint write pauses half-way (test hook), so each step lasts long enough for the kill points below.
        // 1. Killed as soon as step 3 was logged (during step 4 or the write of its checkpoint).
        KillWhen(args, "300", _ => StepsLogged(run) >= 3);
        // 2. Resumed, then killed half-way through writing a checkpoint (the writer pauses there in this test).
        KillWhen([.. args, "--resume"], "2000", _ => Directory.Exists(checkpoints) && Directory.GetFiles(checkpoints, "*.tmp").Length > 0);
        Assert.NotEmpty(Directory.GetFiles(checkpoints, "*.tmp"));
        // 3. Resumed, then killed at an arbitrary moment (150 ms after step 6 was logged).
        var sawStep6 = Stopwatch.StartNew();
        var seen = false;
        KillWhen([.. args, "--resume"], "300", _ =>
        {
            if (!seen && StepsLogged(run) >= 6)
            {
                seen = true;
                sawStep6.Restart();
            }

            return seen && sawStep6.ElapsedMilliseconds >= 150;
        });

        // 4. Resumed to the end.
        var final = CliRunner.Run([.. args, "--resume"]);
        Assert.True(final.ExitCode == 0, final.StdErr + final.StdOut);
        Assert.Contains("resumed at", final.StdOut, StringComparison.Ordinal);

        Assert.Equal(File.ReadAllBytes(dir.File("reference/model/model.safetensors")), File.ReadAllBytes(Path.Combine(run, "model", "model.safetensors")));
        Assert.Equal(Losses(dir.File("reference/metrics.jsonl")), Losses(Path.Combine(run, "metrics.jsonl")));
    }

    /// <summary>The steps logged so far in the run's metrics.jsonl (written and flushed line by line).</summary>
    private static int StepsLogged(string run)
    {
        var path = Path.Combine(run, "metrics.jsonl");
        if (!File.Exists(path))
        {
            return 0;
        }

        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd().Split('\n').Count(l => l.Contains("\"loss\"", StringComparison.Ordinal));
    }

    /// <summary>The loss part of every metrics line (throughput differs between runs).</summary>
    private static string[] Losses(string path) =>
        [.. File.ReadAllLines(path).Select(l => JsonNode.Parse(l)!).Select(n => $"{n["step"]} {n["loss"]?.ToJsonString()} {n["eval"]?.ToJsonString()}")];

    /// <summary>Starts medvlp and SIGKILLs it as soon as <paramref name="when"/> holds for its output so far.</summary>
    private static void KillWhen(string[] args, string? checkpointPauseMs, Func<string, bool> when)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "MedVlp.Cli.dll"));
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        info.Environment["NO_COLOR"] = "1";
        if (checkpointPauseMs is not null)
        {
            info.Environment["MEDVLP_TEST_CHECKPOINT_PAUSE_MS"] = checkpointPauseMs;
        }

        using var process = Process.Start(info)!;
        var output = new System.Text.StringBuilder();
        process.OutputDataReceived += (_, e) =>
        {
            lock (output)
            {
                output.AppendLine(e.Data);
            }
        };
        process.BeginOutputReadLine();
        var stderr = process.StandardError.ReadToEndAsync();
        var clock = Stopwatch.StartNew();
        while (true)
        {
            string text;
            lock (output)
            {
                text = output.ToString();
            }

            if (when(text))
            {
                process.Kill(); // SIGKILL on Linux
                process.WaitForExit();
                return;
            }

            if (process.HasExited)
            {
                Assert.Fail($"medvlp {string.Join(' ', args)} (pause {checkpointPauseMs}) ended before the kill point: {text} {stderr.Result}");
            }

            Assert.True(clock.Elapsed < TimeSpan.FromMinutes(5), "the kill point never came");
            Thread.Sleep(2);
        }
    }
}
