using System.Security.Cryptography;
using System.Text.Json;
using MedVlp.Architectures.LvmMed;
using MedVlp.Data;
using MedVlp.Modeling;
using MedVlp.Testing;
using MedVlp.Text;
using MedVlp.Training;
using MedVlp.Volumes;
using MedVlp.Volumes.IO;
using MedVlp.Volumes.Transforms;
using Xunit.Abstractions;

namespace MedVlp.Tests.Data;

/// <summary>
/// The 2D inputs of the 2D models: single-frame CR and DX radiographs (written by pydicom, values and spacing as pydicom
/// reads them), PNG and JPEG images (written by Pillow, decoded by SkiaSharp and compared with Pillow's decoding), slices of a
/// volume with their geometry, and all of them through a 2D model's preprocessing into its image encoder.
/// </summary>
[Collection(nameof(TorchRandomState))]
public sealed class TwoDimensionalInputTests(ITestOutputHelper output)
{
    private static readonly Lazy<JsonElement> Golden = new(() => JsonDocument.Parse(File.ReadAllText(TestData.Golden("image2d.json"))).RootElement);

    [Theory]
    [InlineData("cr.dcm")]
    [InlineData("dx.dcm")]
    public void RadiographsReadAsPydicomReadsThem(string name)
    {
        var expected = Golden.Value.GetProperty(name);
        var image = VolumeReader.Read(TestData.Golden($"image2d/{name}"));
        Assert.Equal(new VolumeShape(expected.GetProperty("columns").GetInt32(), expected.GetProperty("rows").GetInt32(), 1), image.Shape);
        Assert.Equal(1, image.Frames);
        Assert.Equal(Sha(image), expected.GetProperty("sha256").GetString());
        Assert.Equal(expected.GetProperty("column_spacing").GetDouble(), image.Spacing.X, 6);
        Assert.Equal(expected.GetProperty("row_spacing").GetDouble(), image.Spacing.Y, 6);
    }

    [Theory]
    [InlineData("grey.png", 0)]
    [InlineData("rgb.png", 0)]
    [InlineData("grey.jpg", 4)]
    public void PngAndJpegDecodeAsPillowDecodesThem(string name, int tolerance)
    {
        var expected = Golden.Value.GetProperty(name);
        var image = ImageFileReader.Read(TestData.Golden($"image2d/{name}"));
        Assert.Equal(new VolumeShape(expected.GetProperty("columns").GetInt32(), expected.GetProperty("rows").GetInt32(), 1), image.Shape);
        Assert.Equal(expected.GetProperty("channels").GetInt32(), image.Frames);
        if (tolerance == 0)
        {
            Assert.Equal(expected.GetProperty("sha256").GetString(), Sha(image));
        }

        // JPEG decoders may round the inverse DCT differently (libjpeg in Pillow, Skia's): close, not identical.
        var data = image.Data.Span;
        foreach (var sample in expected.GetProperty("samples").EnumerateArray())
        {
            var index = sample[0].GetInt32();
            Assert.True(Math.Abs(data[index] - sample[1].GetDouble()) <= tolerance, $"{name}[{index}]: {data[index]}, Pillow {sample[1].GetDouble()}");
        }
    }

    [Fact]
    public void AnImageFileThatIsNotPngOrJpegIsAClearError()
    {
        using var folder = TestData.NewTempFolder();
        var path = Path.Combine(folder.Path, "broken.png");
        File.WriteAllBytes(path, [0x89, 0x50, 0x4E, 0x47, 1, 2, 3, 4, 5]);
        var ex = Assert.Throws<VolumeFormatException>(() => ImageFileReader.Read(path));
        Assert.Contains("broken.png", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(SliceAxis.I, 7)]
    [InlineData(SliceAxis.J, 5)]
    [InlineData(SliceAxis.K, 3)]
    public void SlicesKeepTheirValuesAndWorldPositions(SliceAxis axis, int index)
    {
        var volume = VolumeReader.Read(TestData.File("nibabel/example4d.nii.gz"));
        var slice = new ExtractSlice { Axis = axis, Index = index }.Apply(volume);
        Assert.Equal(1, slice.Shape.Z);
        Assert.Equal(volume.Frames, slice.Frames);
        for (var b = 0; b < slice.Shape.Y; b += 3)
        {
            for (var a = 0; a < slice.Shape.X; a += 3)
            {
                var (i, j, k) = axis switch { SliceAxis.I => (index, a, b), SliceAxis.J => (a, index, b), _ => (a, b, index) };
                Assert.Equal(volume[i, j, k], slice[a, b, 0]);
                var expected = volume.Affine.Apply(i, j, k);
                var actual = slice.Affine.Apply(a, b, 0);
                Assert.Equal(expected.X, actual.X, 6);
                Assert.Equal(expected.Y, actual.Y, 6);
                Assert.Equal(expected.Z, actual.Z, 6);
            }
        }

        Assert.Throws<VolumeFormatException>(() => new ExtractSlice { Axis = axis, Index = 10_000 }.Apply(volume));
    }

    [Fact]
    public void RadiographsImagesAndSlicesEmbedThroughA2DModel()
    {
        var tokenizer = WordPieceTextTokenizer.FromVocabularyFile(TestData.File("bert/vocab.txt"));
        var recipe = TrainingRecipe.Resolve("lvmmed");
        using var model = recipe.CreateModel(tokenizer, seed: 1);
        Assert.IsType<LvmMedModel>(model.Module);
        Assert.Equal([1L, 64, 64], model.ImageEncoder.ImageInputShape);
        Volume[] inputs =
        [
            VolumeReader.Read(TestData.Golden("image2d/cr.dcm")),
            ImageFileReader.ReadAny(TestData.Golden("image2d/grey.png")),
            ImageFileReader.ReadAny(TestData.Golden("image2d/grey.jpg")),
            VolumeReader.Read(TestData.File("mricron/ch2.nii.gz")), // a volume: the preprocessing takes its middle axial slice
        ];
        var embeddings = model.VolumeEncoder.Embed(inputs);
        Assert.All(embeddings, e => Assert.Equal(model.VolumeEncoder.Dimensions, e.Length));
        Assert.All(embeddings, e => Assert.InRange(Math.Sqrt(e.Sum(v => (double)v * v)), 0.999, 1.001));
        Assert.NotEqual(embeddings[0], embeddings[3]);
        output.WriteLine($"{inputs.Length} 2D inputs embedded into {model.VolumeEncoder.Dimensions} dimensions by {model.Architecture}");

        // An RGB image is refused by a grey encoder with a message naming the shape.
        var rgb = ImageFileReader.Read(TestData.Golden("image2d/rgb.png"));
        var ex = Assert.ThrowsAny<Exception>(() => model.VolumeEncoder.Embed(rgb));
        Assert.Contains("1, 64, 64", ex.Message, StringComparison.Ordinal);
    }

    private static string Sha(Volume v)
    {
        var bytes = new byte[v.Data.Length * 4];
        Buffer.BlockCopy(v.Data.ToArray(), 0, bytes, 0, bytes.Length);
        return Convert.ToHexStringLower(SHA256.HashData(bytes));
    }
}
