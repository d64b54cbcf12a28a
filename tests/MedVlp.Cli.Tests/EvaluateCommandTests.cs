using System.Globalization;
using System.Text.Json;
using MedVlp.Architectures.Colipri;
using MedVlp.Synthetic;
using MedVlp.Testing;
using MedVlp.Text;
using MedVlp.Volumes;
using MedVlp.Volumes.IO;
using MedVlp.Volumes.IO.Nifti;
using MedVlp.Volumes.Transforms;
using Xunit;

namespace MedVlp.Cli.Tests;

/// <summary><c>medvlp evaluate</c> run as a real process on synthetic chest CTs and a tiny COLIPRI saved as a package.</summary>
public sealed class EvaluateCommandTests : IDisposable
{
    private readonly TempFolder _dir = TestData.NewTempFolder();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void MetricsEqualTheLibraryOnTheSameEmbeddings()
    {
        var (modelDir, manifest, findingsFile, cases) = Prepare(10);
        var result = CliRunner.Run("evaluate", "--model", modelDir, "--manifest", manifest, "--findings", findingsFile, "--json");
        Assert.True(result.ExitCode == 0, result.StdErr);
        using var json = JsonDocument.Parse(result.StdOut);
        Assert.Equal(10, json.RootElement.GetProperty("count").GetInt32());

        using var model = VisionLanguageModel.Load(modelDir);
        var prompts = FindingPromptsFile.Load(findingsFile);
        var zeroShot = new FindingZeroShot(model.DualEncoder, model.Tokenizer, [.. prompts.Select(p => p.Prompts)]);
        var embeddings = cases.Select(c => model.VolumeEncoder.Embed(VolumeReader.Read(_dir.File(c.File)))).ToArray();
        var expected = zeroShot.Evaluate(embeddings, [.. cases.Select(c => prompts.Select(p => c.Case.Findings[ChestFindingExtensions.All.First(f => f.Key() == p.Label)]).ToArray())]);
        foreach (var (name, m) in expected.Findings)
        {
            var actual = json.RootElement.GetProperty("findings").GetProperty(name);
            Assert.Equal(m.Support, actual.GetProperty("positives").GetInt32());
            AssertSame(m.Auroc, actual.GetProperty("auroc"));
            AssertSame(m.F1, actual.GetProperty("f1"));
            AssertSame(m.BalancedAccuracy, actual.GetProperty("balanced_accuracy"));
        }

        AssertSame(expected.MacroAuroc, json.RootElement.GetProperty("macro_auroc"));
        AssertSame(expected.MacroAuprc, json.RootElement.GetProperty("macro_auprc"));
    }

    [Fact]
    public void BadFindingsFilesAndLabelsAreNamedInOneLine()
    {
        var (modelDir, manifest, _, _) = Prepare(3);
        var bad = _dir.File("bad.json");
        File.WriteAllText(bad, """{"cardiomegaly": {"positive": ["Cardiomegaly"], "negative": []}}""");
        var result = CliRunner.Run("evaluate", "--model", modelDir, "--manifest", manifest, "--findings", bad);
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("finding \"cardiomegaly\".negative", result.StdErr, StringComparison.Ordinal);
        Assert.Contains("bad.json", result.StdErr, StringComparison.Ordinal);

        File.WriteAllText(bad, """{"pneumothorax": {"positive": ["Pneumothorax"], "negative": ["No pneumothorax"]}}""");
        result = CliRunner.Run("evaluate", "--model", modelDir, "--manifest", manifest, "--findings", bad);
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("has no label \"pneumothorax\"", result.StdErr, StringComparison.Ordinal);
    }

    private static void AssertSame(double expected, JsonElement actual)
    {
        if (double.IsNaN(expected))
        {
            Assert.Equal(JsonValueKind.Null, actual.ValueKind);
            return;
        }

        // The command writes 6 decimals; compare within that rounding (rounding both sides to 5 places fails on a
        // value like 6/11 = 0.5454545..., written 0.545455).
        Assert.Equal(expected, actual.GetDouble(), 0.6e-6);
    }

    private (string ModelDir, string Manifest, string Findings, (SyntheticChestCase Case, string File)[] Cases) Prepare(int count)
    {
        var tokenizer = WordPieceTextTokenizer.FromVocabularyFile(TestData.File("bert/vocab.txt"));
        var preprocessing = new TransformPipeline(
        [
            new Reorient("SAR"),
            new ResampleToSpacing(12) { Interpolation = Interpolation.Trilinear, FillWithMinimum = true },
            new Clamp(-1000, 1000),
            new ScaleIntensityRange { InputMin = -1000, InputMax = 1000, OutputMin = -1, OutputMax = 1 },
            new CropOrPad { Size = new VolumeShape(32, 32, 32), FillValue = -1, Centering = CropOrPadCentering.ExtraBefore },
        ], "colipri-test");
        var config = ColipriConfig.Tiny(tokenizer.VocabularySize) with { Encoder = ColipriConfig.Tiny().Encoder with { InputSize = 32, PatchSize = 8, Width = 24, Heads = 2 } };
        var modelDir = _dir.File("model");
        using (var model = VisionLanguageModel.Create(config, tokenizer, preprocessing, seed: 4))
        {
            model.Save(modelDir);
        }

        var options = new SyntheticChestOptions { InPlaneSpacingMm = (6, 6), SliceSpacingMm = (6, 6), Prevalence = 0.5 };
        var cases = SyntheticChestDataset.Generate(count, seed: 11, options).Select(c => (c, string.Create(CultureInfo.InvariantCulture, $"c{c.Index}.nii.gz"))).ToArray();
        var manifest = _dir.File("manifest.jsonl");
        using (var writer = new StreamWriter(manifest))
        {
            foreach (var (c, file) in cases)
            {
                NiftiWriter.Write(c.Volume, _dir.File(file));
                writer.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object>
                {
                    ["path"] = file,
                    ["id"] = file,
                    ["labels"] = c.Findings.ToDictionary(f => f.Key.Key(), f => f.Value),
                }));
            }
        }

        var findings = _dir.File("findings.json");
        FindingPromptsFile.Save(findings, ChestFindingExtensions.All.Select(f => new FindingPrompts(f.Key(), [f.PositivePrompt(), f.PositivePrompt() + " are present"], [f.NegativePrompt()])));
        return (modelDir, manifest, findings, cases);
    }
}
