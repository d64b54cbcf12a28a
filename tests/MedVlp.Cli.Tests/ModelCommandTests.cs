using System.Diagnostics;
using System.Text.Json;
using MedVlp.Modeling;
using MedVlp.Serialization;
using MedVlp.Testing;
using MedVlp.Text;
using MedVlp.Volumes;
using MedVlp.Volumes.Transforms;

namespace MedVlp.Cli.Tests;

/// <summary><c>medvlp model keys|list|repack</c>, and a package survives its writer being killed mid-save.</summary>
public sealed class ModelCommandTests
{
    private static TransformPipeline Preprocessing(int size) => new(
    [
        new MinMaxNormalize { OutputMin = 0, OutputMax = 1 },
        new ResizeLongestSide { Size = size, AlignCorners = true, Interpolation = Interpolation.Trilinear },
        new CropOrPad { Size = new VolumeShape(size, size, size), FillValue = 0, Centering = CropOrPadCentering.ExtraAfter },
    ], "test");

    [Fact]
    public void KeysListsExactlyTheKeysAndShapesOfASavedPackage()
    {
        var result = CliRunner.Run("model", "keys", "--arch", "clip3d", "--size", "tiny", "--json");
        Assert.True(result.ExitCode == 0, result.StdErr);
        using var json = JsonDocument.Parse(result.StdOut);
        var keys = json.RootElement.GetProperty("keys").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.EnumerateArray().Select(d => d.GetInt64()).ToArray());

        using var folder = TestData.NewTempFolder();
        var tokenizer = WordPieceTextTokenizer.FromVocabularyFile(TestData.File("bert/vocab.txt"));
        using (var model = VisionLanguageModel.Create(ModelRegistry.Config("clip3d", "tiny"), tokenizer, Preprocessing(32)))
        {
            model.Save(folder.Path);
        }

        var header = Safetensors.ReadHeader(folder.File("model.safetensors"));
        Assert.Equal(header.Entries.Select(e => e.Name).Order(StringComparer.Ordinal), keys.Keys.Order(StringComparer.Ordinal));
        foreach (var e in header.Entries)
        {
            Assert.Equal(e.Shape, keys[e.Name]);
        }

        var parameters = json.RootElement.GetProperty("parameters");
        Assert.Equal(header.Entries.Sum(e => e.ElementCount), parameters.GetProperty("total").GetInt64());
        Assert.Equal(parameters.GetProperty("total").GetInt64(), parameters.GetProperty("trainable").GetInt64() + parameters.GetProperty("frozen").GetInt64());

        var list = CliRunner.Run("model", "list", "--json");
        Assert.True(list.ExitCode == 0, list.StdErr);
        using var rows = JsonDocument.Parse(list.StdOut);
        Assert.Contains(rows.RootElement.EnumerateArray(), r => r.GetProperty("name").GetString() == "clip3d" && r.GetProperty("size").GetString() == "tiny"
            && r.GetProperty("parameters").GetInt64() == parameters.GetProperty("total").GetInt64());

        var unknown = CliRunner.Run("model", "keys", "--arch", "nope");
        Assert.Equal(2, unknown.ExitCode);
        Assert.Contains("No architecture \"nope\"", unknown.StdErr, StringComparison.Ordinal);
    }

    /// <summary>
    /// Kills (SIGKILL) a real <c>medvlp model repack</c> that overwrites a package, at several points of the save; the
    /// folder must always load, as the old package or the new one.
    /// </summary>
    [Fact]
    public void KillingTheWriterMidSaveLeavesALoadablePackage()
    {
        using var folder = TestData.NewTempFolder();
        var tokenizer = WordPieceTextTokenizer.FromVocabularyFile(TestData.File("bert/vocab.txt"));
        // Big enough (about 40 MB) that writing the weights takes a while.
        var config = Clip3dConfig.Tiny() with { Text = Clip3dConfig.Tiny().Text with { HiddenSize = 320, NumAttentionHeads = 4, IntermediateSize = 640 } };
        var volume = new Volume([.. Enumerable.Range(0, 20 * 20 * 20).Select(i => (float)(i % 97))], new VolumeShape(20, 20, 20));
        var oldPackage = folder.File("old");
        var newPackage = folder.File("new");
        float[] oldEmbedding, newEmbedding;
        using (var a = VisionLanguageModel.Create(config, tokenizer, Preprocessing(32), seed: 1))
        {
            a.Save(oldPackage);
            oldEmbedding = a.VolumeEncoder.Embed(volume);
        }

        using (var b = VisionLanguageModel.Create(config, tokenizer, Preprocessing(32), seed: 2))
        {
            b.Save(newPackage);
            newEmbedding = b.VolumeEncoder.Embed(volume);
        }

        var points = new (string Stage, int DelayMs)[] { ("weights", 0), ("weights", 20), ("tokenizers", 0), ("config", 0), ("flush", 0), ("replace", 0) };
        var outcomes = new List<string>();
        for (var n = 0; n < points.Length; n++)
        {
            var target = folder.File($"target{n}");
            CopyFolder(oldPackage, target);
            var killed = RunAndKill(["model", "repack", newPackage, "--out", target], $"saving: {points[n].Stage}", points[n].DelayMs);
            using var loaded = VisionLanguageModel.Load(target);
            var embedding = loaded.VolumeEncoder.Embed(volume);
            var which = embedding.SequenceEqual(oldEmbedding) ? "old" : embedding.SequenceEqual(newEmbedding) ? "new" : "mixed";
            Assert.NotEqual("mixed", which);
            outcomes.Add($"{points[n].Stage}+{points[n].DelayMs}ms: {(killed ? "killed" : "finished")}, {which}");
        }

        // At least one kill landed while the new package was being written (the old one survived it).
        Assert.Contains(outcomes, o => o.Contains("killed, old", StringComparison.Ordinal));
    }

    private static bool RunAndKill(string[] args, string line, int delayMs)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "MedVlp.Cli.dll"));
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        using var process = Process.Start(info)!;
        _ = process.StandardError.ReadToEndAsync();
        string? read;
        while ((read = process.StandardOutput.ReadLine()) is not null)
        {
            if (read == line)
            {
                if (delayMs > 0)
                {
                    Thread.Sleep(delayMs);
                }

                var killed = !process.HasExited;
                process.Kill(); // SIGKILL on Unix: no handler, no cleanup runs
                process.WaitForExit();
                return killed;
            }
        }

        process.WaitForExit();
        throw new InvalidOperationException($"medvlp exited ({process.ExitCode}) without printing \"{line}\".");
    }

    private static void CopyFolder(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            var destination = Path.Combine(to, Path.GetRelativePath(from, file));
            Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
            File.Copy(file, destination);
        }
    }
}
