using System.Globalization;
using System.Text.RegularExpressions;
using MedVlp.Modeling;
using MedVlp.Synthetic;
using MedVlp.Testing;
using MedVlp.Text;
using MedVlp.Volumes;
using MedVlp.Volumes.IO;
using MedVlp.Volumes.Transforms;

namespace MedVlp.Samples.Tests;

/// <summary>Every sample project runs on small data and prints what it says it does.</summary>
public sealed partial class SampleTests
{
    [Fact]
    public void QuickStartRunsOnANiftiFile()
    {
        using var folder = TestData.NewTempFolder();
        var modelDir = folder.File("model");
        var volumePath = TestData.File("mricron/ch2.nii.gz");
        float[] expected;
        using (var model = TinyModel())
        {
            model.Save(modelDir);
            expected = model.VolumeEncoder.Embed(VolumeReader.Read(volumePath));
        }

        var result = SampleRunner.Run("QuickStart", volumePath, modelDir);
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("read:       nifti1, 181x217x181 voxels of 1x1x1 mm, orientation RAS", result.StdOut, StringComparison.Ordinal);
        Assert.Contains("-> 16x16x16 voxels", result.StdOut, StringComparison.Ordinal);

        // The sample's embedding is the library's, printed to 4 decimals.
        var embed = EmbedLine().Match(result.StdOut);
        Assert.True(embed.Success, result.ToString());
        Assert.Equal(expected.Length, int.Parse(embed.Groups[1].Value, CultureInfo.InvariantCulture));
        Assert.Equal(1.0, double.Parse(embed.Groups[2].Value, CultureInfo.InvariantCulture), 3);
        var first = embed.Groups[3].Value.Split(", ").Select(s => double.Parse(s, CultureInfo.InvariantCulture)).ToArray();
        for (var n = 0; n < 4; n++)
        {
            Assert.Equal(expected[n], first[n], 3);
        }

        Assert.Matches(@"zero-shot:  (CN|MCI|AD) \(CN 0\.\d{3}, MCI 0\.\d{3}, AD 0\.\d{3}\)", result.StdOut);
    }

    [Fact]
    public void QuickStartTakesLabelsAndADicomFolder()
    {
        using var folder = TestData.NewTempFolder();
        var modelDir = folder.File("model");
        using (var model = TinyModel())
        {
            model.Save(modelDir);
        }

        var result = SampleRunner.Run("QuickStart", TestData.File("pydicom/CT5N"), modelDir, "normal=a normal scan", "tumour=a large tumour", "normal=no finding");
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("read:       dicom,", result.StdOut, StringComparison.Ordinal);
        Assert.Matches(@"zero-shot:  (normal|tumour) \(normal 0\.\d{3}, tumour 0\.\d{3}\)", result.StdOut);
    }

    [Fact]
    public void QuickStartWithoutArgumentsPrintsUsage()
    {
        var result = SampleRunner.Run("QuickStart");
        Assert.Equal(2, result.ExitCode);
        Assert.StartsWith("usage: QuickStart VOLUME MODEL", result.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public void AskMedBlipAnswersAsTheLibraryDoes()
    {
        using var folder = TestData.NewTempFolder();
        var modelDir = folder.File("medblip");
        var volumePath = TestData.File("mricron/ch2.nii.gz");
        string expectedAnswer;
        MedVlp.Architectures.MedBlip.MedBlipDiagnosis expectedDiagnosis;
        var tokenizer = WordPieceTextTokenizer.FromVocabularyFile(TestData.File("bert/vocab.txt"));
        using (var model = VisionLanguageModel.Create(MedVlp.Architectures.MedBlip.MedBlipConfig.Tiny(tokenizer.VocabularySize), tokenizer, MedVlp.Training.TrainingRecipe.Preprocessing(32), seed: 5))
        {
            model.Save(modelDir);
            var assistant = new MedVlp.Architectures.MedBlip.MedBlipAssistant(model);
            var volume = VolumeReader.Read(volumePath);
            expectedAnswer = assistant.Ask([volume], ["Is there atrophy?"], [null], maxTokens: 16)[0];
            expectedDiagnosis = assistant.DiagnoseGenerative([volume], [null])[0];
        }

        var result = SampleRunner.Run("AskMedBlip", modelDir, volumePath, "Is there atrophy?");
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("model:      medblip,", result.StdOut, StringComparison.Ordinal);
        Assert.Contains("volume:     nifti1, 181x217x181 voxels", result.StdOut, StringComparison.Ordinal);
        Assert.Contains($"answer:     {expectedAnswer}\n", result.StdOut, StringComparison.Ordinal);
        Assert.Contains($"generative: {expectedDiagnosis.Diagnosis?.Code() ?? "unmatched"} (\"{expectedDiagnosis.Answer}\")", result.StdOut, StringComparison.Ordinal);
        Assert.Matches(@"contrastive: (CN|MCI|AD) \(", result.StdOut);

        var usage = SampleRunner.Run("AskMedBlip");
        Assert.Equal(2, usage.ExitCode);
        Assert.StartsWith("usage: AskMedBlip MODEL VOLUME", usage.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public void CustomLossTrains()
    {
        var result = SampleRunner.Run("CustomLoss", "60");
        Assert.True(result.ExitCode == 0, result.ToString());
        var before = Percent(@"before training: top-1 report retrieval ([\d.]+) ?%", result);
        var after = Percent(@"after 60 steps: top-1 report retrieval ([\d.]+) ?%", result);
        Assert.True(after > before + 30, $"retrieval went from {before}% to {after}%\n{result}");

        // Each logged step names the composite's terms: the total and both parts.
        var steps = StepLine().Matches(result.StdOut);
        Assert.Equal(4, steps.Count);   // steps 1, 20, 40, 60
        var firstClip = double.Parse(steps[0].Groups[1].Value, CultureInfo.InvariantCulture);
        var lastClip = double.Parse(steps[^1].Groups[1].Value, CultureInfo.InvariantCulture);
        Assert.True(lastClip < firstClip, result.ToString());
    }

    private static double Percent(string pattern, SampleRunner.Result result)
    {
        var match = Regex.Match(result.StdOut, pattern);
        Assert.True(match.Success, $"no '{pattern}' in\n{result}");
        return double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
    }

    [GeneratedRegex(@"embed:      (\d+) floats, norm ([\d.]+), first \[([-\d., ]+)\]")]
    private static partial Regex EmbedLine();

    [GeneratedRegex(@"step +\d+: total -?[\d.]+, clip ([\d.]+), uniformity -?[\d.]+")]
    private static partial Regex StepLine();

    private static VisionLanguageModel TinyModel()
    {
        var tokenizer = WordPieceTextTokenizer.FromVocabularyFile(TestData.File("bert/vocab.txt"));
        var config = new Clip3dConfig
        {
            Volume = new VolumeTransformerConfig { InputSize = 16, PatchSize = 8, Width = 16, Depth = 1, Heads = 2, MlpRatio = 2 },
            Text = new BertConfig
            {
                VocabSize = tokenizer.VocabularySize,
                HiddenSize = 16,
                NumHiddenLayers = 1,
                NumAttentionHeads = 2,
                IntermediateSize = 32,
                MaxPositionEmbeddings = 64,
                AddPoolingLayer = false,
            },
            EmbeddingDim = 8,
            MaxTextTokens = 64,
        };
        var preprocessing = new TransformPipeline(
        [
            new MinMaxNormalize { OutputMin = 0, OutputMax = 1 },
            new ResizeLongestSide { Size = 16, AlignCorners = true, Interpolation = Interpolation.Trilinear },
            new CropOrPad { Size = new VolumeShape(16, 16, 16), FillValue = 0, Centering = CropOrPadCentering.ExtraAfter },
        ], "tiny-medblip");
        return VisionLanguageModel.Create(config, tokenizer, preprocessing, seed: 3);
    }
}
