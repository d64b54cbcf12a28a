using System.Diagnostics;
using MedVlp.Data;
using MedVlp.Inference.Batch;
using MedVlp.Testing;
using MedVlp.Volumes.IO;

namespace MedVlp.Retrieval.Tests;

/// <summary>Streaming embedding and the <c>medvlp embed</c> job: parity with VolumeEncoder, failures, shards, resume after SIGKILL.</summary>
public sealed class EmbedJobTests
{
    private static async IAsyncEnumerable<T> Async<T>(IEnumerable<T> items)
    {
        foreach (var item in items)
        {
            await Task.Yield();
            yield return item;
        }
    }

    [Fact]
    public async Task StreamingEmbedderEqualsVolumeEncoderAndReportsUnreadableVolumes()
    {
        using var dir = TestData.NewTempFolder();
        var (manifestPath, ids) = EmbedFixture.WriteArchive(dir.Path, 7, 3, "broken");
        var entries = Manifest.Load(manifestPath).Entries;
        using var model = EmbedFixture.TinyModel();
        var expected = model.VolumeEncoder.Embed(entries.Take(7).Select(e => VolumeReader.Read(e.Path)).ToArray());
        var embedder = new StreamingEmbedder(model, new StreamingEmbedderOptions { BatchSize = 3, Workers = 2, PrefetchBatches = 1 });
        var progress = new List<EmbeddingProgress>();
        var results = new List<EmbeddingResult>();
        await foreach (var r in embedder.EmbedAsync(Async(entries.Select(e => new EmbeddingInput(e.Id, e.Path, e.Report))), new Progress<EmbeddingProgress>(progress.Add)))
        {
            results.Add(r);
        }

        Assert.Equal([.. ids, "broken"], results.Select(r => r.Input.Id));
        for (var n = 0; n < 7; n++)
        {
            Assert.True(results[n].Succeeded);
            for (var k = 0; k < 8; k++)
            {
                Assert.True(Math.Abs(expected[n][k] - results[n].Embedding![k]) < 1e-6, $"case {n} value {k}");
            }
        }

        Assert.False(results[7].Succeeded);
        Assert.Contains("broken.nii.gz", results[7].Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CancellationStopsTheStream()
    {
        using var dir = TestData.NewTempFolder();
        var (manifestPath, _) = EmbedFixture.WriteArchive(dir.Path, 12);
        var entries = Manifest.Load(manifestPath).Entries;
        using var model = EmbedFixture.TinyModel();
        using var cts = new CancellationTokenSource();
        var seen = 0;
        var embedder = new StreamingEmbedder(model, new StreamingEmbedderOptions { BatchSize = 2, Workers = 2 });
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var r in embedder.EmbedAsync(Async(entries.Select(e => new EmbeddingInput(e.Id, e.Path))), null, cts.Token))
            {
                if (++seen == 2)
                {
                    await cts.CancelAsync();
                }
            }
        });
        Assert.InRange(seen, 2, 3);
    }

    private static async Task<IList<EmbeddingRow>> Merged(string outDir, string manifest)
    {
        var result = CliRunner.Run("embed", "merge", "--manifest", manifest, "--out", outDir);
        Assert.True(result.ExitCode == 0, result.StdErr + result.StdOut);
        var (rows, metadata) = await EmbeddingParquet.ReadAsync(Path.Combine(outDir, EmbeddingJob.MergedFileName));
        Assert.StartsWith("sha256:", metadata[EmbeddingParquet.ModelFingerprintKey], StringComparison.Ordinal);
        Assert.Equal("8", metadata[EmbeddingParquet.DimensionsKey]);
        return rows;
    }

    /// <summary>Same ids, paths and reports in the same order; embeddings equal (tolerance 0) or within a tolerance.</summary>
    private static void AssertSameRows(IList<EmbeddingRow> expected, IList<EmbeddingRow> actual, float tolerance = 0)
    {
        Assert.Equal(expected.Select(r => (r.Id, r.SourcePath, r.Report)), actual.Select(r => (r.Id, r.SourcePath, r.Report)));
        for (var n = 0; n < expected.Count; n++)
        {
            if (tolerance == 0)
            {
                Assert.Equal(expected[n].Embedding, actual[n].Embedding);
                continue;
            }

            Assert.Equal(expected[n].Embedding.Length, actual[n].Embedding.Length);
            for (var k = 0; k < expected[n].Embedding.Length; k++)
            {
                Assert.True(Math.Abs(expected[n].Embedding[k] - actual[n].Embedding[k]) <= tolerance, $"{expected[n].Id}[{k}]: {actual[n].Embedding[k]} vs {expected[n].Embedding[k]}");
            }
        }
    }

    [Fact]
    public async Task ThreeShardsMergedEqualOneRunAndUnreadableVolumesAreListed()
    {
        using var dir = TestData.NewTempFolder();
        var model = EmbedFixture.SaveModel(dir.Path);
        var (manifest, ids) = EmbedFixture.WriteArchive(dir.Path, 10);
        var whole = dir.File("whole");
        var run = CliRunner.Run("embed", "--model", model, "--manifest", manifest, "--out", whole, "--batch", "4");
        Assert.True(run.ExitCode == 0, run.StdErr);
        Assert.Contains("10 embedded, 0 already done, 0 failed", run.StdOut, StringComparison.Ordinal);
        var expected = await Merged(whole, manifest);
        Assert.Equal(ids, expected.Select(r => r.Id));

        var sharded = dir.File("sharded");
        foreach (var shard in new[] { "2/3", "0/3", "1/3" })
        {
            var part = CliRunner.Run("embed", "--model", model, "--manifest", manifest, "--out", sharded, "--shard", shard, "--batch", "2");
            Assert.True(part.ExitCode == 0, part.StdErr);
        }

        // Batches of other sizes and members move libtorch's CPU results by ~1e-7 (its kernels block by batch size).
        AssertSameRows(expected, await Merged(sharded, manifest), 1e-6f);

        // A rerun skips everything; a merge with a shard missing names the missing ids.
        var again = CliRunner.Run("embed", "--model", model, "--manifest", manifest, "--out", sharded, "--shard", "1/3");
        Assert.Contains("0 embedded, 3 already done", again.StdOut, StringComparison.Ordinal);
        foreach (var file in Directory.EnumerateFiles(sharded, "part-0001-of-0003-*.parquet"))
        {
            File.Delete(file);
        }

        var incomplete = CliRunner.Run("embed", "merge", "--manifest", manifest, "--out", sharded);
        Assert.Equal(2, incomplete.ExitCode);
        Assert.Contains("3 id(s) missing: case_0001, case_0004, case_0007", incomplete.StdErr, StringComparison.Ordinal);

        // Unreadable volumes: listed with their error, the job goes on, exit code 3.
        var (badManifest, _) = EmbedFixture.WriteArchive(dir.File("bad"), 3, 3, "broken_case");
        var bad = CliRunner.Run("embed", "--model", model, "--manifest", badManifest, "--out", dir.File("badout"));
        Assert.Equal(3, bad.ExitCode);
        Assert.Contains("3 embedded, 0 already done, 1 failed", bad.StdOut, StringComparison.Ordinal);
        var failures = File.ReadAllLines(dir.File("badout/failures-0000-of-0001.jsonl"));
        Assert.Single(failures);
        Assert.Contains("\"id\":\"broken_case\"", failures[0], StringComparison.Ordinal);
        Assert.Contains("broken_case.nii.gz", failures[0], StringComparison.Ordinal);
    }

    [Fact]
    public async Task ResumeAfterSigkillGivesTheRowsOfAnUninterruptedRun()
    {
        using var dir = TestData.NewTempFolder();
        var model = EmbedFixture.SaveModel(dir.Path);
        var (manifest, _) = EmbedFixture.WriteArchive(dir.Path, 40);
        var whole = dir.File("whole");
        Assert.Equal(0, CliRunner.Run("embed", "--model", model, "--manifest", manifest, "--out", whole, "--batch", "1", "--workers", "1").ExitCode);
        var expected = await Merged(whole, manifest);

        var killed = dir.File("killed");
        var info = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "MedVlp.Cli.dll"), "embed", "--model", model, "--manifest", manifest, "--out", killed, "--batch", "1", "--workers", "1" })
        {
            info.ArgumentList.Add(a);
        }

        using (var process = Process.Start(info)!)
        {
            var watch = Stopwatch.StartNew();
            while (!process.HasExited && watch.Elapsed < TimeSpan.FromMinutes(2)
                && (!Directory.Exists(killed) || Directory.GetFiles(killed, "part-*.parquet").Length < 5))
            {
                Thread.Sleep(5);
            }

            Assert.False(process.HasExited, "the job finished before it could be killed");
            process.Kill(); // SIGKILL on Linux: no cleanup, no flush
            process.WaitForExit();
            Assert.Equal(137, process.ExitCode);
        }

        var parts = Directory.GetFiles(killed, "part-*.parquet").Length;
        Assert.InRange(parts, 5, 39);
        var resumed = CliRunner.Run("embed", "--model", model, "--manifest", manifest, "--out", killed, "--batch", "1");
        Assert.True(resumed.ExitCode == 0, resumed.StdErr);
        Assert.Contains($"{40 - parts} embedded, {parts} already done", resumed.StdOut, StringComparison.Ordinal);
        AssertSameRows(expected, await Merged(killed, manifest));
        Assert.Empty(Directory.GetFiles(killed, "*.tmp"));
    }
}
