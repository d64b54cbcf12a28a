using MedVlp.Testing;
using MedVlp.Volumes.IO;
using MedVlp.Volumes.IO.Dicom;

namespace MedVlp.Volumes.Tests.Dicom;

/// <summary>Enhanced multi-frame files: geometry and rescaling from the shared and per-frame functional groups.</summary>
public sealed class DicomEnhancedMultiFrameTests
{
    private static DicomBuilder Item() => new();

    private static DicomBuilder Enhanced(bool undefinedLength)
    {
        // Three 3x4 frames stored at z = 6, 0, 3 (out of order), each with its own rescale.
        double[] z = [6, 0, 3];
        double[] slope = [1, 2, 1];
        double[] intercept = [0, 10, -5];
        var perFrame = z.Select((zz, f) => Item()
            .Sequence(DicomTagIds.PlanePositionSequence, undefinedLength, Item().Decimals(DicomTagIds.ImagePositionPatient, 5, -7, zz))
            .Sequence(DicomTagIds.PixelValueTransformationSequence, undefinedLength, Item().Decimals(DicomTagIds.RescaleIntercept, intercept[f]).Decimals(DicomTagIds.RescaleSlope, slope[f])))
            .ToArray();
        var shared = Item()
            .Sequence(DicomTagIds.PixelMeasuresSequence, undefinedLength, Item().Decimals(DicomTagIds.PixelSpacing, 0.5, 0.25))
            .Sequence(DicomTagIds.PlaneOrientationSequence, undefinedLength, Item().Decimals(DicomTagIds.ImageOrientationPatient, 1, 0, 0, 0, 1, 0))
            // A private sequence MedVlp does not keep, nested inside a kept one, must be skipped.
            .Sequence(0x0029_1010, undefinedLength, Item().Text(0x0029_0010, "LO", "PRIVATE").Sequence(0x0029_1011, undefinedLength, Item().Text(0x0008_0060, "CS", "XX")));

        var b = DicomBuilder.Slice("1.2.90", 1, [0, 0, 0])
            .Remove(DicomTagIds.ImagePositionPatient)
            .Remove(DicomTagIds.ImageOrientationPatient)
            .Remove(DicomTagIds.PixelSpacing)
            .Text(0x0028_0008, "IS", "3")
            .Sequence(DicomTagIds.SharedFunctionalGroups, undefinedLength, shared)
            .Sequence(DicomTagIds.PerFrameFunctionalGroups, undefinedLength, perFrame);
        var px = new short[3 * 12];
        for (var n = 0; n < px.Length; n++)
        {
            px[n] = (short)n; // frame f holds 12f .. 12f + 11
        }

        return b.Pixels(px);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void FramesAreSortedAndRescaledFromFunctionalGroups(bool undefinedLength)
    {
        using var temp = TestData.NewTempFolder();
        var path = Enhanced(undefinedLength).Write(temp.File("enhanced.dcm"));
        var result = DicomSeriesReader.ReadSeries(path);
        var v = result.Volume;
        Assert.Empty(result.Warnings);
        Assert.Equal(new VolumeShape(3, 4, 3), v.Shape);
        Assert.Equal(3, v.Spacing.Z, 1e-9);
        Assert.Equal(0.25, v.Spacing.X, 1e-9);
        Assert.Equal(0.5, v.Spacing.Y, 1e-9);
        // k = 0 is stored frame 1 (z = 0, slope 2, intercept 10): 2 * 12 + 10.
        Assert.Equal((2 * 12) + 10, v[0, 0, 0]);
        // k = 1 is frame 2 (z = 3, intercept -5): 24 - 5; k = 2 is frame 0 (z = 6).
        Assert.Equal(24 - 5, v[0, 0, 1]);
        Assert.Equal(11, v[2, 3, 2]);
        Assert.Equal(-5, v.Affine[0, 3], 1e-9);
        Assert.Equal(7, v.Affine[1, 3], 1e-9);
        Assert.Equal(0, v.Affine[2, 3], 1e-9);
        Assert.Equal("true", v.Metadata.Properties["RescaleVaries"]);
    }

    [Fact]
    public void PerFrameGroupCountMustCoverTheFrames()
    {
        using var temp = TestData.NewTempFolder();
        var path = Enhanced(false).Text(0x0028_0008, "IS", "4").Write(temp.File("bad.dcm"));
        var ex = Assert.Throws<VolumeFormatException>(() => VolumeReader.Read(path));
        Assert.Contains(ex.Field!, new[] { "PerFrameFunctionalGroupsSequence", "PixelData" });
    }
}
