using System.Buffers.Binary;
using System.Diagnostics;
using System.IO.Compression;
using System.Text;
using System.Text.Json;
using MedVlp.Modeling;
using MedVlp.Testing;
using MedVlp.Text;
using MedVlp.Volumes;
using MedVlp.Volumes.IO.Nifti;
using MedVlp.Volumes.Transforms;

namespace MedVlp.Cli.Tests;

/// <summary>A tiny model package (real bert-base-uncased vocabulary), saved once for the zero-shot process tests.</summary>
public sealed class TinyPackageFixture : IDisposable
{
    private readonly TempFolder _folder = TestData.NewTempFolder();

    public TinyPackageFixture()
    {
        var tokenizer = WordPieceTextTokenizer.FromVocabularyFile(TestData.File("bert/vocab.txt"));
        var config = new Clip3dConfig
        {
            Volume = new VolumeTransformerConfig { InputSize = 16, PatchSize = 8, Width = 16, Depth = 1, Heads = 2, MlpRatio = 2 },
            Text = new BertConfig
            {
                VocabSize = tokenizer.VocabularySize, HiddenSize = 16, NumHiddenLayers = 1, NumAttentionHeads = 2, IntermediateSize = 32,
                MaxPositionEmbeddings = 64, HiddenDropoutProb = 0, AttentionProbsDropoutProb = 0, AddPoolingLayer = false,
            },
            EmbeddingDim = 8,
            MaxTextTokens = 64,
        };
        var preprocessing = new TransformPipeline(
        [
            new MinMaxNormalize(),
            new ResizeLongestSide { Size = 16 },
            new CropOrPad { Size = new VolumeShape(16, 16, 16) },
        ], "tiny");
        using var model = VisionLanguageModel.Create(config, tokenizer, preprocessing, 3);
        Directory = _folder.File("model");
        model.Save(Directory);
    }

    /// <summary>The package folder (do not modify; copy it first).</summary>
    public string Directory { get; }

    /// <summary>A copy of the package that a test may damage.</summary>
    internal string CopyTo(TempFolder tmp)
    {
        var copy = tmp.File("model-copy");
        System.IO.Directory.CreateDirectory(copy);
        foreach (var f in System.IO.Directory.GetFiles(Directory))
        {
            File.Copy(f, Path.Combine(copy, Path.GetFileName(f)));
        }

        return copy;
    }

    public void Dispose() => _folder.Dispose();
}

/// <summary>
/// The CLI on hostile inputs: every expected failure (a header escaping its folder, a FIFO, a budget exceeded, a bad
/// pipeline file, a damaged package, running out of memory) prints exactly one line on stderr, no stack trace, and exits 2.
/// </summary>
public sealed class HostileInputCliTests(TinyPackageFixture package) : IClassFixture<TinyPackageFixture>
{
    private static readonly TimeSpan Limit = TimeSpan.FromMinutes(3);
    private static readonly string[] Labels = ["--label", "normal=A normal brain.", "--label", "atrophy=Marked atrophy."];

    private static void AssertOneLineError(CliRunner.Result result, string expected)
    {
        Assert.True(result.ExitCode == 2, $"exit {result.ExitCode}; stderr: {result.StdErr}; stdout: {result.StdOut}");
        var lines = result.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, $"expected one line on stderr, got {lines.Length}:\n{result.StdErr}");
        Assert.StartsWith("medvlp: error: ", lines[0], StringComparison.Ordinal);
        Assert.Contains(expected, lines[0], StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", result.StdErr, StringComparison.Ordinal);
        Assert.DoesNotContain("root:", result.StdOut + result.StdErr, StringComparison.Ordinal);
    }

    private static string WriteText(TempFolder tmp, string name, string text)
    {
        var path = tmp.File(name);
        File.WriteAllText(path, text);
        return path;
    }

    [Theory]
    [InlineData("info")]
    [InlineData("convert")]
    public void HeadersNamingEtcPasswdAreRefused(string command)
    {
        using var tmp = TestData.NewTempFolder();
        var mhd = WriteText(tmp, "p.mhd", "NDims = 3\nElementType = MET_UCHAR\nDimSize = 16 4 1\nElementDataFile = /etc/passwd\n");
        var nhdr = WriteText(tmp, "p.nhdr", "NRRD0004\ntype: uchar\ndimension: 3\nsizes: 16 4 1\nencoding: raw\ndata file: ../../../../../../../../etc/passwd\n");
        foreach (var header in new[] { mhd, nhdr })
        {
            var output = tmp.File("out.nii");
            var result = command == "info" ? CliRunner.Run(Limit, null, "info", "--json", header) : CliRunner.Run(Limit, null, "convert", header, output);
            AssertOneLineError(result, "outside the header's folder");
            Assert.False(File.Exists(output));
        }
    }

    [Fact]
    public void AFifoIsRefusedInsteadOfBlocking()
    {
        using var tmp = TestData.NewTempFolder();
        var fifo = tmp.File("pipe.nii");
        using (var mk = Process.Start("mkfifo", [fifo]))
        {
            mk.WaitForExit();
            Assert.Equal(0, mk.ExitCode);
        }

        // Without the fix the process blocks in open(2) forever; CliRunner kills it after the limit and the test fails.
        AssertOneLineError(CliRunner.Run(Limit, null, "info", fifo), "FIFO");
    }

    [Fact]
    public void TheVoxelBudgetComesFromTheCommandLine()
    {
        using var tmp = TestData.NewTempFolder();
        var nii = tmp.File("v.nii");
        NiftiWriter.Write(Volume.Zeros(new VolumeShape(8, 8, 8)), nii);
        AssertOneLineError(CliRunner.Run(Limit, null, "info", nii, "--max-voxels", "100"), "the limit is 100");
        Assert.Equal(0, CliRunner.Run(Limit, null, "info", nii, "--max-voxels", "512").ExitCode);
        AssertOneLineError(CliRunner.Run(Limit, null, "info", nii, "--max-voxels", "0"), "--max-voxels must be a positive number");
        var pipeline = WriteText(tmp, "p.json", """{"format": "medvlp.transform_pipeline", "version": 1, "transforms": [{"type": "resample_to_shape", "shape": {"x": 10, "y": 10, "z": 10}}]}""");
        AssertOneLineError(CliRunner.Run(Limit, null, "preprocess", nii, tmp.File("o.nii"), "--pipeline", pipeline, "--max-voxels", "600"), "above the limit of 600");
    }

    [Theory]
    [InlineData("""{"format": "medvlp.transform_pipeline", "version": 1, "transforms": [{"type": "crop_or_pad", "size": {"x": 1000, "y": 1000, "z": 1000}}]}""", "transforms[0] (type \"crop_or_pad\")")]
    [InlineData("""{"format": "medvlp.transform_pipeline", "version": 1, "transforms": [{"type": "resample_to_spacing", "spacing": {"x": 0.0001, "y": 0.0001, "z": 0.0001}}]}""", "preprocessing step 0 (resample_to_spacing in ")]
    [InlineData("""{"format": "medvlp.transform_pipeline", "version": 1, "transforms": [{"type": "clamp", "min": "low"}]}""", "transforms[0] (type \"clamp\")")]
    [InlineData("""{"format": "medvlp.transform_pipeline", "version": 3, "transforms": []}""", "version: 3 is not supported")]
    [InlineData("""{"format": "medvlp.transform_pipeline", """, "not valid JSON")]
    public void BadPipelineFilesGiveOneLine(string json, string expected)
    {
        using var tmp = TestData.NewTempFolder();
        var nii = tmp.File("v.nii");
        NiftiWriter.Write(Volume.Zeros(new VolumeShape(8, 8, 8), Affine.FromSpacing(new Spacing(1, 1, 1))), nii);
        var pipeline = WriteText(tmp, "preprocessing.json", json);
        var result = CliRunner.Run(Limit, null, "preprocess", nii, tmp.File("o.nii"), "--pipeline", pipeline);
        AssertOneLineError(result, expected);
        Assert.Contains(expected.StartsWith("preprocessing step", StringComparison.Ordinal) ? nii : pipeline, result.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public void OutOfMemoryIsOneLine()
    {
        using var tmp = TestData.NewTempFolder();
        var path = WriteGzippedZeros(tmp.File("big.nii.gz"), 512); // 2^27 voxels: 512 MiB as float32
        var heapLimit = new Dictionary<string, string> { ["DOTNET_GCHeapHardLimit"] = "0x10000000" }; // 256 MiB
        AssertOneLineError(CliRunner.Run(Limit, heapLimit, "info", path), "out of memory");
    }

    [Fact]
    public void AOneMegabyteGigavoxelFileDoesNotReachZeroShot()
    {
        using var tmp = TestData.NewTempFolder();
        var path = WriteGzippedZeros(tmp.File("zeros.nii.gz"), 1024);
        Assert.InRange(new FileInfo(path).Length, 100_000, 5_000_000);

        // A 1.5 GiB heap: refusing the 4 GiB volume must not need the memory it asks for.
        var heapLimit = new Dictionary<string, string> { ["DOTNET_GCHeapHardLimit"] = "0x60000000" };
        var result = CliRunner.Run(Limit, heapLimit, ["zeroshot", "--model", package.Directory, .. Labels, path]);
        AssertOneLineError(result, $"the limit is {ResourceLimits.DefaultMaxVoxels}");
    }

    [Fact]
    public void NonFiniteVolumesGetAWarningOrAreRefused()
    {
        using var tmp = TestData.NewTempFolder();
        var nan = tmp.File("nan.nii");
        var inf = tmp.File("inf.nii");
        var ok = tmp.File("ok.nii");
        var data = new float[12 * 12 * 12];
        NiftiWriter.Write(new Volume(Enumerable.Range(0, data.Length).Select(i => (float)i).ToArray(), new VolumeShape(12, 12, 12)), ok);
        Array.Fill(data, float.NaN);
        NiftiWriter.Write(new Volume(data, new VolumeShape(12, 12, 12)), nan);
        Array.Fill(data, float.PositiveInfinity);
        NiftiWriter.Write(new Volume((float[])data.Clone(), new VolumeShape(12, 12, 12)), inf);

        var result = CliRunner.Run(Limit, null, ["zeroshot", "--model", package.Directory, .. Labels, "--json", ok, nan, inf]);
        Assert.True(result.ExitCode == 0, result.StdErr);
        var rows = result.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToArray();
        Assert.Equal(3, rows.Length);
        Assert.False(rows[0].TryGetProperty("warnings", out _));
        Assert.Contains("all 1728 voxels are NaN", rows[1].GetProperty("warnings")[0].GetString(), StringComparison.Ordinal);
        Assert.Contains("all 1728 voxels are infinite", rows[2].GetProperty("warnings")[0].GetString(), StringComparison.Ordinal);
        Assert.Contains($"medvlp: warning: {nan}: the volume's voxels are not all finite", result.StdErr, StringComparison.Ordinal);

        var refused = CliRunner.Run(Limit, null, ["zeroshot", "--model", package.Directory, .. Labels, "--reject-non-finite", ok, inf]);
        AssertOneLineError(refused, $"{inf}: voxel values: all 1728 voxels are infinite; --reject-non-finite refuses such volumes.");
    }

    [Theory]
    [InlineData("vocab.txt")]
    [InlineData("preprocessing.json")]
    public void ADamagedPackageFileIsOneLine(string file)
    {
        using var tmp = TestData.NewTempFolder();
        var model = package.CopyTo(tmp);
        File.WriteAllBytes(Path.Combine(model, file), Encoding.UTF8.GetBytes(file == "vocab.txt" ? "" : "{\"format\": 1}"));
        var nii = tmp.File("v.nii");
        NiftiWriter.Write(Volume.Zeros(new VolumeShape(8, 8, 8)), nii);
        var result = CliRunner.Run(Limit, null, ["zeroshot", "--model", model, .. Labels, nii]);
        AssertOneLineError(result, file);
    }

    /// <summary>A NIfTI-1 uint8 volume of n^3 zeros, gzipped (about n^3 / 1000 bytes), written without holding it in memory.</summary>
    private static string WriteGzippedZeros(string path, int n)
    {
        var header = new byte[352];
        using (var m = new MemoryStream())
        {
            NiftiWriter.Write(Volume.Zeros(new VolumeShape(1, 1, 1)), m, new NiftiWriteOptions { Compress = false, Version = 1 });
            m.ToArray().AsSpan(0, 352).CopyTo(header);
        }

        BinaryPrimitives.WriteInt16LittleEndian(header.AsSpan(70), 2); // datatype: uint8
        BinaryPrimitives.WriteInt16LittleEndian(header.AsSpan(72), 8); // bitpix

        for (var a = 1; a <= 3; a++)
        {
            BinaryPrimitives.WriteInt16LittleEndian(header.AsSpan(40 + (2 * a)), (short)n);
        }

        using var file = File.Create(path);
        using var gz = new GZipStream(file, CompressionLevel.Optimal);
        gz.Write(header);
        var zeros = new byte[1 << 20];
        for (long left = (long)n * n * n; left > 0; left -= zeros.Length)
        {
            gz.Write(zeros, 0, (int)Math.Min(zeros.Length, left));
        }

        return path;
    }
}
