using System.Globalization;
using System.Text.Json;
using MedVlp.Evaluation;
using MedVlp.Modeling;
using MedVlp.Synthetic;
using MedVlp.Testing;
using MedVlp.Text;
using MedVlp.Volumes;
using MedVlp.Volumes.IO;
using MedVlp.Volumes.IO.Nifti;
using MedVlp.Volumes.Transforms;
using Xunit;

namespace MedVlp.Cli.Tests;

/// <summary><c>medvlp probe</c> run as a real process on synthetic brains and a tiny model saved as a package.</summary>
public sealed class ProbeCommandTests : IDisposable
{
    private readonly TempFolder _dir = TestData.NewTempFolder();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void ProbeReportEqualsTheLibraryOnTheSameEmbeddings()
    {
        var (modelDir, manifest, paths, labels) = Prepare(12);
        var result = CliRunner.Run("probe", "--model", modelDir, "--manifest", manifest, "--label", "diagnosis", "--folds", "3", "--json", "--baseline-random");
        Assert.True(result.ExitCode == 0, result.StdErr);
        using var json = JsonDocument.Parse(result.StdOut);
        var trained = json.RootElement.GetProperty("trained");
        Assert.Equal(12, trained.GetProperty("count").GetInt32());
        Assert.Equal(3, trained.GetProperty("fold_accuracies").GetArrayLength());
        Assert.True(json.RootElement.TryGetProperty("random init", out _));

        // The same probe, in-process, on the same model's embeddings.
        using var model = VisionLanguageModel.Load(modelDir);
        var embeddings = paths.Select(p => model.VolumeEncoder.Embed(VolumeReader.Read(p))).ToArray();
        var classes = labels.Distinct().Order(StringComparer.Ordinal).ToArray();
        var y = labels.Select(l => Array.IndexOf(classes, l)).ToArray();
        var expected = LinearProbe.CrossValidate(embeddings, y, classes, folds: 3, seed: 0).Report;
        Assert.Equal(expected.Accuracy, trained.GetProperty("accuracy").GetDouble(), 5);
        Assert.Equal(expected.MacroAuroc, trained.GetProperty("macro_auroc").GetDouble(), 5);
        foreach (var m in expected.Classes)
        {
            Assert.Equal(m.Support, trained.GetProperty("classes").GetProperty(m.Name).GetProperty("support").GetInt32());
        }
    }

    [Fact]
    public void UnknownLabelColumnIsNamedInOneLine()
    {
        var (modelDir, manifest, _, _) = Prepare(6);
        var result = CliRunner.Run("probe", "--model", modelDir, "--manifest", manifest, "--label", "stage");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("without the label \"stage\"", result.StdErr, StringComparison.Ordinal);
        Assert.Contains("diagnosis", result.StdErr, StringComparison.Ordinal);
        Assert.Single(result.StdErr.Trim().Split('\n'));
    }

    private (string ModelDir, string Manifest, string[] Paths, string[] Labels) Prepare(int count)
    {
        var cases = SyntheticBrainDataset.Generate(count, seed: 5);
        var lines = new List<string> { "id,path,diagnosis" };
        var paths = new List<string>();
        foreach (var c in cases)
        {
            var file = Path.Combine(_dir.Path, string.Create(CultureInfo.InvariantCulture, $"case_{c.Index:D3}.nii.gz"));
            NiftiWriter.Write(c.Volume, file);
            paths.Add(file);
            lines.Add(string.Create(CultureInfo.InvariantCulture, $"c{c.Index},{Path.GetFileName(file)},{c.Diagnosis.Code()}"));
        }

        var manifest = Path.Combine(_dir.Path, "manifest.csv");
        File.WriteAllLines(manifest, lines);
        var tokenizer = WordPieceTextTokenizer.FromVocabularyFile(TestData.File("bert/vocab.txt"));
        var config = Clip3dConfig.Small(tokenizer.VocabularySize);
        TransformPipeline preprocessing = new(
        [
            new MinMaxNormalize { OutputMin = 0, OutputMax = 1 },
            new ResizeLongestSide { Size = 32, AlignCorners = true, Interpolation = Interpolation.Trilinear },
            new CropOrPad { Size = new VolumeShape(32, 32, 32), FillValue = 0, Centering = CropOrPadCentering.ExtraAfter },
        ], "probe-test");
        var modelDir = Path.Combine(_dir.Path, "model");
        using (var model = VisionLanguageModel.Create(config, tokenizer, preprocessing, seed: 3))
        {
            model.Save(modelDir);
        }

        return (modelDir, manifest, [.. paths], cases.Select(c => c.Diagnosis.Code()).ToArray());
    }
}
