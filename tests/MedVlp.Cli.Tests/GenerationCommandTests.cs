using System.Text.Json;
using MedVlp.Architectures.MedBlip;
using MedVlp.Inference.Generation;
using MedVlp.Synthetic;
using MedVlp.Testing;
using MedVlp.Text;
using MedVlp.Volumes;
using MedVlp.Volumes.IO;
using MedVlp.Volumes.IO.Nifti;
using MedVlp.Volumes.Transforms;
using Xunit;

namespace MedVlp.Cli.Tests;

/// <summary><c>medvlp ask</c>'s decoding options, <c>medvlp report</c> and <c>medvlp zeroshot --generative</c> as real processes on a tiny MedBLIP package.</summary>
public sealed class GenerationCommandTests
{
    [Fact]
    public void DecodingOptionsReachTheEngineAndReportAndGenerativeZeroShotRun()
    {
        using var dir = TestData.NewTempFolder();
        var volumeFile = Path.Combine(dir.Path, "brain.nii.gz");
        NiftiWriter.Write(SyntheticBrainDataset.GenerateCase(6, 3).Volume, volumeFile);
        var tokenizer = WordPieceTextTokenizer.FromVocabularyFile(TestData.File("bert/vocab.txt"));
        TransformPipeline preprocessing = new(
        [
            new MinMaxNormalize { OutputMin = 0, OutputMax = 1 },
            new ResizeLongestSide { Size = 32, AlignCorners = true, Interpolation = Interpolation.Trilinear },
            new CropOrPad { Size = new VolumeShape(32, 32, 32), FillValue = 0, Centering = CropOrPadCentering.ExtraAfter },
        ], "test");
        var modelDir = Path.Combine(dir.Path, "model");
        const string Question = "What is seen?";
        var sampling = new GenerationOptions { MaxNewTokens = 6, DoSample = true, Temperature = 1.3, TopP = 0.95, TopK = 50, Seed = 4 };
        GeneratedText beams, sampled;
        using (var model = VisionLanguageModel.Create(MedBlipConfig.Tiny(tokenizer.VocabularySize), tokenizer, preprocessing, seed: 8))
        {
            var vqa = new VisualQuestionAnswering(model);
            var volume = VolumeReader.Read(volumeFile);
            beams = vqa.Answer(volume, Question, null, new GenerationOptions { MaxNewTokens = 5, NumBeams = 3 });
            sampled = vqa.Answer(volume, Question, null, sampling);
            model.Save(modelDir);
        }

        var beamRun = CliRunner.Run("ask", "--model", modelDir, "--question", Question, "--max-tokens", "5", "--beams", "3", "--json", volumeFile);
        Assert.True(beamRun.ExitCode == 0, beamRun.StdErr);
        using (var json = JsonDocument.Parse(beamRun.StdOut.Trim()))
        {
            Assert.Equal(beams.Text, json.RootElement.GetProperty("answer").GetString());
            Assert.Equal(beams.Score!.Value, json.RootElement.GetProperty("score").GetDouble(), 1e-9);
        }

        var sampleArgs = new[] { "ask", "--model", modelDir, "--question", Question, "--max-tokens", "6", "--temperature", "1.3", "--top-p", "0.95", "--top-k", "50", "--seed", "4", "--stream", volumeFile };
        var streamed = CliRunner.Run(sampleArgs);
        Assert.True(streamed.ExitCode == 0, streamed.StdErr);
        Assert.Equal($"{volumeFile}: {sampled.Text}", streamed.StdOut.Trim());

        var badBeams = CliRunner.Run("ask", "--model", modelDir, "--question", Question, "--beams", "2", "--temperature", "0.7", volumeFile);
        Assert.Equal(2, badBeams.ExitCode);
        Assert.Contains("--beams", badBeams.StdErr, StringComparison.Ordinal);

        var report = CliRunner.Run("report", "--model", modelDir, volumeFile);
        Assert.Equal(2, report.ExitCode);
        Assert.Contains("no report decoder", report.StdErr, StringComparison.Ordinal);

        var zeroShot = CliRunner.Run("zeroshot", "--generative", "--model", modelDir, "--max-tokens", "4", "--json", volumeFile);
        Assert.True(zeroShot.ExitCode == 0, zeroShot.StdErr);
        using (var json = JsonDocument.Parse(zeroShot.StdOut.Trim()))
        {
            var answer = json.RootElement.GetProperty("answer").GetString()!;
            var matched = json.RootElement.GetProperty("matched").GetBoolean();
            Assert.Equal(MedBlipText.ParseDiagnosis(answer) is not null, matched);
            if (!matched)
            {
                Assert.Contains("answers name no label", zeroShot.StdErr, StringComparison.Ordinal); // an untrained model: reported, not hidden
            }
        }
    }
}
