using System.Globalization;
using System.Text.Json;
using MedVlp.Modeling;
using MedVlp.Synthetic;
using MedVlp.Testing;
using MedVlp.Text;
using MedVlp.Volumes;
using MedVlp.Volumes.IO.Nifti;
using MedVlp.Volumes.Transforms;

namespace MedVlp.Retrieval.Tests;

/// <summary>A tiny saved model package and a synthetic archive (NIfTI volumes + a JSON Lines manifest with reports).</summary>
internal static class EmbedFixture
{
    private static readonly Lazy<WordPieceTextTokenizer> BertTokenizer = new(() => WordPieceTextTokenizer.FromVocabularyFile(TestData.File("bert/vocab.txt")));

    public static Clip3dConfig TinyConfig() => new()
    {
        Volume = new VolumeTransformerConfig { InputSize = 16, PatchSize = 8, Width = 16, Depth = 1, Heads = 2, MlpRatio = 2 },
        Text = new BertConfig
        {
            VocabSize = BertTokenizer.Value.VocabularySize,
            HiddenSize = 16,
            NumHiddenLayers = 1,
            NumAttentionHeads = 2,
            IntermediateSize = 32,
            MaxPositionEmbeddings = 64,
            HiddenDropoutProb = 0,
            AttentionProbsDropoutProb = 0,
            AddPoolingLayer = false,
        },
        EmbeddingDim = 8,
        MaxTextTokens = 64,
    };

    public static TransformPipeline Preprocessing() => new(
    [
        new MinMaxNormalize { OutputMin = 0, OutputMax = 1 },
        new ResizeLongestSide { Size = 16, AlignCorners = true, Interpolation = Interpolation.Trilinear },
        new CropOrPad { Size = new VolumeShape(16, 16, 16), FillValue = 0, Centering = CropOrPadCentering.ExtraAfter },
    ], "test");

    public static VisionLanguageModel TinyModel(int seed = 7) => VisionLanguageModel.Create(TinyConfig(), BertTokenizer.Value, Preprocessing(), seed);

    /// <summary>Saves a tiny model to <c>dir/model</c> and returns the folder.</summary>
    public static string SaveModel(string dir)
    {
        var path = Path.Combine(dir, "model");
        using var model = TinyModel();
        model.Save(path);
        return path;
    }

    /// <summary>Writes <paramref name="count"/> small synthetic cases and a manifest; returns the manifest path and the ids.</summary>
    public static (string Manifest, string[] Ids) WriteArchive(string dir, int count, int seed = 3, params string[] extraCorruptIds)
    {
        var archive = Path.Combine(dir, "archive");
        Directory.CreateDirectory(archive);
        var options = new SyntheticBrainOptions { Shape = new VolumeShape(20, 24, 20), VoxelSizeMm = 8 };
        var lines = new List<string>();
        var ids = new List<string>();
        foreach (var c in SyntheticBrainDataset.Generate(count, seed, options))
        {
            var id = string.Create(CultureInfo.InvariantCulture, $"case_{c.Index:D4}");
            var file = Path.Combine(archive, id + ".nii.gz");
            NiftiWriter.Write(c.Volume, file);
            lines.Add(JsonSerializer.Serialize(new Dictionary<string, string> { ["id"] = id, ["path"] = file, ["report"] = c.Report }));
            ids.Add(id);
        }

        foreach (var bad in extraCorruptIds)
        {
            var file = Path.Combine(archive, bad + ".nii.gz");
            File.WriteAllBytes(file, [0x1f, 0x8b, 8, 0, 1, 2, 3]);
            lines.Add(JsonSerializer.Serialize(new Dictionary<string, string> { ["id"] = bad, ["path"] = file, ["report"] = "" }));
        }

        var manifest = Path.Combine(dir, "manifest.jsonl");
        File.WriteAllLines(manifest, lines);
        return (manifest, [.. ids]);
    }
}
