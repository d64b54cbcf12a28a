using System.Text.Json.Nodes;
using MedVlp.Testing;

namespace MedVlp.Cli.Tests;

/// <summary><c>medvlp train --recipe mflag|lvmmed</c> on the manifest <c>medvlp synth</c> writes (2D slices of the brains; two
/// augmented views for LVM-Med), then <c>medvlp probe</c> on the trained package against its random initialisation.</summary>
public sealed class PaperRecipeCommandTests
{
    [Theory]
    [InlineData("lvmmed")]
    [InlineData("mflag")]
    public void TrainsOnASynthManifestAndProbes(string recipe)
    {
        using var dir = TestData.NewTempFolder();
        var synth = CliRunner.Run("synth", "--out", dir.File("data"), "--count", "14", "--seed", "4", "--val-fraction", "0.25");
        Assert.True(synth.ExitCode == 0, synth.StdErr);
        var train = CliRunner.Run("train", "--recipe", recipe, "--manifest", dir.File("data/manifest.jsonl"), "--out", dir.File("run"),
            "--steps", "2", "--batch", "4", "--vocab", TestData.File("bert/vocab.txt"));
        Assert.True(train.ExitCode == 0, train.StdErr + train.StdOut);
        Assert.Contains("step 2/2", train.StdOut, StringComparison.Ordinal);
        Assert.Contains(recipe == "lvmmed" ? "hamming=" : "orthogonality=", train.StdOut, StringComparison.Ordinal);
        Assert.True(File.Exists(dir.File("run/model/model.safetensors")));
        Assert.Contains($"\"architecture\": \"{recipe}\"", File.ReadAllText(dir.File("run/recipe.json")), StringComparison.Ordinal);

        var probe = CliRunner.Run("probe", "--model", dir.File("run/model"), "--manifest", dir.File("data/manifest.jsonl"), "--label", "diagnosis",
            "--folds", "2", "--baseline-random", "--json");
        Assert.True(probe.ExitCode == 0, probe.StdErr + probe.StdOut);
        var json = JsonNode.Parse(probe.StdOut)!.AsObject();
        Assert.Equal(14, json["trained"]!["count"]!.GetValue<int>());
        Assert.Equal(14, json["random init"]!["count"]!.GetValue<int>());
    }

    [Fact]
    public void PriorTrainsItsThreeStagesOnASynthManifestThenProbesAndClassifiesZeroShot()
    {
        using var dir = TestData.NewTempFolder();
        var synth = CliRunner.Run("synth", "--out", dir.File("data"), "--count", "14", "--seed", "4", "--val-fraction", "0.25");
        Assert.True(synth.ExitCode == 0, synth.StdErr);

        // The tiny recipe with stages of 2, 1 and 1 steps, written as a recipe file.
        var tiny = MedVlp.Training.TrainingRecipe.Resolve("prior");
        var recipe = tiny with
        {
            Stages = [.. tiny.Stages.Select((s, i) => s with { Steps = i == 0 ? 2 : 1 })],
            Data = tiny.Data with { BatchSize = 4 },
        };
        File.WriteAllText(dir.File("prior-smoke.json"), recipe.ToJson());
        var train = CliRunner.Run("train", "--recipe", dir.File("prior-smoke.json"), "--manifest", dir.File("data/manifest.jsonl"), "--out", dir.File("run"),
            "--vocab", TestData.File("bert/vocab.txt"));
        Assert.True(train.ExitCode == 0, train.StdErr + train.StdOut);
        Assert.Contains("step 4/4", train.StdOut, StringComparison.Ordinal);
        Assert.Contains("[stage3]", train.StdOut, StringComparison.Ordinal);
        Assert.Contains("rec_image=", train.StdOut, StringComparison.Ordinal);
        Assert.True(File.Exists(dir.File("run/model/model.safetensors")));
        Assert.Contains("\"architecture\": \"prior\"", File.ReadAllText(dir.File("run/model/config.json")), StringComparison.Ordinal);

        var probe = CliRunner.Run("probe", "--model", dir.File("run/model"), "--manifest", dir.File("data/manifest.jsonl"), "--label", "diagnosis",
            "--folds", "2", "--baseline-random", "--json");
        Assert.True(probe.ExitCode == 0, probe.StdErr + probe.StdOut);
        var json = JsonNode.Parse(probe.StdOut)!.AsObject();
        Assert.Equal(14, json["trained"]!["count"]!.GetValue<int>());
        Assert.Equal(14, json["random init"]!["count"]!.GetValue<int>());

        var zeroShot = CliRunner.Run("zeroshot", "--model", dir.File("run/model"), "--json",
            "--label", "CN=Not demented is observed", "--label", "MCI=mild cognitive impairment (MCI) is observed", "--label", "AD=Dementia is observed",
            dir.File("data/case_0000.nii.gz"), dir.File("data/case_0001.nii.gz"));
        Assert.True(zeroShot.ExitCode == 0, zeroShot.StdErr + zeroShot.StdOut);
        var rows = zeroShot.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!.AsObject()).ToArray();
        Assert.Equal(2, rows.Length);
        foreach (var row in rows)
        {
            var p = row["probabilities"]!.AsObject().Select(kv => kv.Value!.GetValue<double>()).ToArray();
            Assert.Equal(3, p.Length);
            Assert.Equal(1.0, p.Sum(), 4);
            Assert.Contains(row["prediction"]!.GetValue<string>(), new[] { "CN", "MCI", "AD" });
        }
    }

    [Fact]
    public void TheListShowsThePaperRecipes()
    {
        var result = CliRunner.Run("train", "--list");
        Assert.True(result.ExitCode == 0, result.StdErr);
        foreach (var name in new[] { "mflag", "mflag-full", "lvmmed", "lvmmed-full", "prior", "prior-full", "prior3d", "prior3d-full" })
        {
            Assert.Contains(name, result.StdOut, StringComparison.Ordinal);
        }
    }
}
