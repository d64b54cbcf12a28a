using System.Text.Json;
using MedVlp.Architectures.MedBlip;
using MedVlp.Synthetic;
using MedVlp.Testing;
using MedVlp.Text;
using MedVlp.Volumes;
using MedVlp.Volumes.IO;
using MedVlp.Volumes.IO.Nifti;
using MedVlp.Volumes.Transforms;
using Xunit;

namespace MedVlp.Cli.Tests;

/// <summary><c>medvlp ask</c> run as a real process on a tiny MedBLIP package and a NIfTI file.</summary>
public sealed class AskCommandTests
{
    [Fact]
    public void AskAnswersAsTheAssistantDoesAndRefusesAnotherArchitecture()
    {
        using var dir = TestData.NewTempFolder();
        var volumeFile = Path.Combine(dir.Path, "brain.nii.gz");
        NiftiWriter.Write(SyntheticBrainDataset.GenerateCase(5, 2).Volume, volumeFile);
        var tokenizer = WordPieceTextTokenizer.FromVocabularyFile(TestData.File("bert/vocab.txt"));
        TransformPipeline preprocessing = new(
        [
            new MinMaxNormalize { OutputMin = 0, OutputMax = 1 },
            new ResizeLongestSide { Size = 32, AlignCorners = true, Interpolation = Interpolation.Trilinear },
            new CropOrPad { Size = new VolumeShape(32, 32, 32), FillValue = 0, Centering = CropOrPadCentering.ExtraAfter },
        ], "test");
        var modelDir = Path.Combine(dir.Path, "model");
        string expected;
        using (var model = VisionLanguageModel.Create(MedBlipConfig.Tiny(tokenizer.VocabularySize), tokenizer, preprocessing, seed: 8))
        {
            expected = new MedBlipAssistant(model).Ask([VolumeReader.Read(volumeFile)], ["What is seen?"], maxTokens: 3)[0];
            model.Save(modelDir);
        }

        var result = CliRunner.Run("ask", "--model", modelDir, "--question", "What is seen?", "--max-tokens", "3", "--json", volumeFile);
        Assert.True(result.ExitCode == 0, result.StdErr);
        using var json = JsonDocument.Parse(result.StdOut.Trim());
        Assert.Equal(expected, json.RootElement.GetProperty("answer").GetString());
        Assert.Equal("What is seen?", json.RootElement.GetProperty("question").GetString());

        var bad = CliRunner.Run("ask", "--model", modelDir, "--question", "x", "--max-tokens", "0", volumeFile);
        Assert.NotEqual(0, bad.ExitCode);
        Assert.Contains("--max-tokens", bad.StdErr, StringComparison.Ordinal);
    }
}
