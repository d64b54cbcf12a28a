using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text.Json;
using MedVlp.Testing;
using MedVlp.Volumes.IO;
using MedVlp.Volumes.IO.Nifti;

namespace MedVlp.Volumes.Tests;

/// <summary>
/// Every voxel of every frame of every NIfTI file of the test data against nibabel (make_nifti_voxels_golden.py);
/// the geometry is checked by <see cref="IO.NiftiReaderParityTests"/>.
/// </summary>
public sealed class NiftiVoxelParityTests
{
    private static readonly Lazy<JsonDocument> Info = new(() => JsonDocument.Parse(File.ReadAllText(TestData.Golden("nifti_info.json"))));
    private static readonly Lazy<JsonDocument> Voxels = new(() => JsonDocument.Parse(File.ReadAllText(TestData.Golden("nifti_voxels.json"))));

    public static TheoryData<string> ReadableFiles()
    {
        var data = new TheoryData<string>();
        foreach (var p in Voxels.Value.RootElement.EnumerateObject().Where(p => !p.Name.StartsWith('_')))
        {
            data.Add(p.Name);
        }

        return data;
    }

    public static TheoryData<string> HeaderOnlyFiles()
    {
        var data = new TheoryData<string>();
        foreach (var p in Info.Value.RootElement.EnumerateObject())
        {
            if (!p.Name.StartsWith('_') && p.Value.TryGetProperty("header_only", out var h) && h.GetBoolean())
            {
                data.Add(p.Name);
            }
        }

        return data;
    }

    [Fact]
    public void EveryGoldenFileIsCovered()
    {
        var info = Info.Value.RootElement.EnumerateObject().Count(p => !p.Name.StartsWith('_'));
        Assert.Equal(info, ReadableFiles().Count + HeaderOnlyFiles().Count);
        Assert.True(ReadableFiles().Count >= 15);
    }

    [Theory]
    [MemberData(nameof(ReadableFiles))]
    public void EveryVoxelMatchesNibabel(string rel)
    {
        var golden = Voxels.Value.RootElement.GetProperty(rel);
        var v = VolumeReader.Read(TestData.File(rel));
        var ours = v.Data.Span;
        var shape = golden.GetProperty("shape").EnumerateArray().Select(e => (long)e.GetInt32()).ToArray();
        Assert.Equal(shape.Aggregate(1L, (a, b) => a * b), ours.Length);
        Assert.Equal(golden.GetProperty("nan_count").GetInt32(), TensorNanCount(ours));

        foreach (var s in golden.GetProperty("samples").EnumerateArray())
        {
            var n = s[0].GetInt64();
            var expected = s[1].ValueKind == JsonValueKind.Null ? float.NaN : (float)s[1].GetDouble();
            Assert.True(SameValue(expected, ours[(int)n]), $"voxel {n}: ours {ours[(int)n]}, nibabel {expected}");
        }

        // The bytes of the whole array, every frame, exactly as nibabel's get_fdata(dtype=float32).
        var sha = Convert.ToHexStringLower(SHA256.HashData(MemoryMarshal.AsBytes(ours)));
        Assert.Equal(golden.GetProperty("sha256_f32").GetString(), sha);
    }

    [Theory]
    [MemberData(nameof(HeaderOnlyFiles))]
    public void HeaderOnlyFilesNameTheMissingImage(string rel)
    {
        var path = TestData.File(rel);
        var ex = Assert.Throws<VolumeFormatException>(() => VolumeReader.Read(path));
        Assert.Equal(path, ex.FilePath);
        if (Info.Value.RootElement.GetProperty(rel).GetProperty("format").GetString() == "analyze")
        {
            Assert.Contains("Analyze 7.5", ex.Message, StringComparison.Ordinal);
            return;
        }

        Assert.Contains(Path.GetFileNameWithoutExtension(rel) + ".img", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(HeaderOnlyFiles))]
    public void HeaderOnlyFilesStillGiveTheirHeader(string rel)
    {
        var info = Info.Value.RootElement.GetProperty(rel);
        if (info.GetProperty("format").GetString() == "analyze")
        {
            // Analyze 7.5 headers are refused with a clear message rather than guessed at.
            var ex = Assert.Throws<VolumeFormatException>(() => NiftiReader.ReadHeader(TestData.File(rel)));
            Assert.Contains("Analyze", ex.Message, StringComparison.Ordinal);
            return;
        }

        var h = NiftiReader.ReadHeader(TestData.File(rel));
        var shape = info.GetProperty("shape").EnumerateArray().Select(e => (long)e.GetInt32()).ToArray();
        Assert.Equal(shape, h.Dim.Skip(1).Take(h.Rank).ToArray());
        Assert.False(h.IsSingleFile);
        var affine = info.GetProperty("affine").EnumerateArray().Select(r => r.EnumerateArray().Select(e => e.GetDouble()).ToArray()).ToArray();
        var ours = h.GetBestAffine();
        for (var r = 0; r < 4; r++)
        {
            for (var c = 0; c < 4; c++)
            {
                Assert.True(Math.Abs(affine[r][c] - ours[r, c]) <= 1e-4, $"affine[{r},{c}]: ours {ours[r, c]}, nibabel {affine[r][c]}");
            }
        }
    }

    private static bool SameValue(float expected, float actual) =>
        (float.IsNaN(expected) && float.IsNaN(actual)) || expected == actual;

    private static int TensorNanCount(ReadOnlySpan<float> values)
    {
        var n = 0;
        foreach (var x in values)
        {
            n += float.IsNaN(x) ? 1 : 0;
        }

        return n;
    }
}
