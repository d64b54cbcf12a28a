using System.Text.Json;
using MedVlp.Testing;
using MedVlp.Volumes.IO;
using MedVlp.Volumes.IO.Dicom;

namespace MedVlp.Volumes.Tests.Dicom;

/// <summary>
/// MONOCHROME1 radiographs (the smallest value displayed white) and VOI windows against pydicom 2.x: the three real CR
/// radiographs of pydicom's test files, a windowed MONOCHROME2 CT slice and a signed MONOCHROME1 DX with two SIGMOID
/// windows written by pydicom (tests/golden/make_monochrome1_golden.py). Read by default, a MONOCHROME1 image equals
/// pydicom's modality values inverted within the output range (<c>y_min + y_max - v</c>); with the window, pydicom's
/// <c>apply_voi_lut</c> values, inverted.
/// </summary>
public sealed class DicomMonochrome1Tests
{
    private static readonly Lazy<JsonElement> Golden = new(() => JsonDocument.Parse(File.ReadAllText(TestData.Golden("monochrome1.json"))).RootElement);

    public static TheoryData<string> Files => ["pydicom/CR/CR1/6154", "pydicom/CR/CR2/6247", "pydicom/CR/CR3/6278", "pydicom/CT5N/2062", "monochrome1/signed_sigmoid.dcm"];

    private static string PathOf(string key) => key.StartsWith("pydicom/", StringComparison.Ordinal) ? TestData.File(key) : TestData.Golden(key);

    private static VolumeReadOptions Options(Monochrome1Handling handling, bool window, int index = 0) =>
        new() { Dicom = new DicomReadOptions { Monochrome1 = handling, ApplyVoiWindow = window, VoiWindowIndex = index } };

    private static void AssertValues(string key, string field, Volume volume)
    {
        var g = Golden.Value.GetProperty(key);
        var expected = g.GetProperty(field).EnumerateArray().Select(e => e.GetDouble()).ToArray();
        Assert.Equal(new VolumeShape(g.GetProperty("columns").GetInt32(), g.GetProperty("rows").GetInt32(), 1), volume.Shape);
        var actual = volume.Data.Span;
        var worst = 0.0;
        for (var n = 0; n < expected.Length; n++)
        {
            // float32 values of magnitude up to ~34,000: a few float32 ulps.
            worst = Math.Max(worst, Math.Abs(actual[n] - expected[n]) / Math.Max(1, Math.Abs(expected[n])));
        }

        Assert.True(worst <= 1e-6, $"{key} {field}: largest relative difference to pydicom {worst:G3}");
    }

    [Theory]
    [MemberData(nameof(Files))]
    public void DefaultReadIsDisplayConsistentAsPydicomInverted(string key)
    {
        var g = Golden.Value.GetProperty(key);
        var monochrome1 = g.GetProperty("photometric").GetString() == "MONOCHROME1";
        var volume = VolumeReader.Read(PathOf(key), Options(Monochrome1Handling.Invert, window: false));
        AssertValues(key, monochrome1 ? "inverted" : "modality", volume);
        Assert.Equal(monochrome1 ? "true" : null, volume.Metadata.Properties.GetValueOrDefault("Monochrome1Inverted"));
        Assert.Equal(g.GetProperty("photometric").GetString(), volume.Metadata.Properties["PhotometricInterpretation"]);

        // The default options are the inverting ones.
        AssertValues(key, monochrome1 ? "inverted" : "modality", VolumeReader.Read(PathOf(key)));
    }

    [Theory]
    [MemberData(nameof(Files))]
    public void AsStoredKeepsPydicomsModalityValues(string key) =>
        AssertValues(key, "modality", VolumeReader.Read(PathOf(key), Options(Monochrome1Handling.AsStored, window: false)));

    [Theory]
    [MemberData(nameof(Files))]
    public void VoiWindowEqualsPydicomsApplyVoiLutThenTheInversion(string key)
    {
        var g = Golden.Value.GetProperty(key);
        var monochrome1 = g.GetProperty("photometric").GetString() == "MONOCHROME1";
        var index = g.GetProperty("window_index").GetInt32();
        var volume = VolumeReader.Read(PathOf(key), Options(Monochrome1Handling.Invert, window: true, index));
        AssertValues(key, monochrome1 ? "windowed_inverted" : "windowed", volume);
        Assert.Contains(g.GetProperty("voi_function").GetString()!, volume.Metadata.Properties["VoiWindow"], StringComparison.Ordinal);
        AssertValues(key, "windowed", VolumeReader.Read(PathOf(key), Options(Monochrome1Handling.AsStored, window: true, index)));
    }

    [Fact]
    public void InvertedRadiographIsBrighterWhereTheStoredValueIsLower()
    {
        // MONOCHROME1: a low stored value is bright on screen; inverted, it must be the higher value.
        var path = TestData.File("pydicom/CR/CR1/6154");
        var stored = VolumeReader.Read(path, Options(Monochrome1Handling.AsStored, window: false)).Data.ToArray();
        var shown = VolumeReader.Read(path).Data.ToArray();
        var darkest = Array.IndexOf(stored, stored.Max());
        var brightest = Array.IndexOf(stored, stored.Min());
        Assert.True(shown[brightest] > shown[darkest]);
    }

    [Fact]
    public void LookupTablesMedVlpDoesNotApplyFailWithTheirField()
    {
        using var temp = TestData.NewTempFolder();
        var lut = new DicomBuilder().Text(0x0028_3003, "LO", "TABLE");
        var modality = DicomBuilder.Slice("1.2.91", 1, [0, 0, 0]).Sequence(0x0028_3000, false, lut).Pixels(new short[12]).Write(temp.File("modality-lut.dcm"));
        var ex = Assert.Throws<VolumeFormatException>(() => VolumeReader.Read(modality));
        Assert.Equal("ModalityLUTSequence", ex.Field);
        Assert.Contains("modality-lut.dcm", ex.Message, StringComparison.Ordinal);

        var voi = DicomBuilder.Slice("1.2.92", 1, [0, 0, 0]).Sequence(0x0028_3010, true, lut).Pixels(new short[12]).Write(temp.File("voi-lut.dcm"));
        Assert.Equal(new VolumeShape(3, 4, 1), VolumeReader.Read(voi).Shape); // only the window option needs it
        ex = Assert.Throws<VolumeFormatException>(() => VolumeReader.Read(voi, Options(Monochrome1Handling.Invert, window: true)));
        Assert.Equal("VOILUTSequence", ex.Field);
    }

    [Fact]
    public void AMalformedWindowFailsOnlyWhenTheWindowIsAskedFor()
    {
        using var temp = TestData.NewTempFolder();
        var path = DicomBuilder.Slice("1.2.93", 1, [0, 0, 0]).Text(0x0028_1050, "DS", "wide").Text(0x0028_1051, "DS", "400").Pixels(new short[12]).Write(temp.File("bad-window.dcm"));
        Assert.Equal(new VolumeShape(3, 4, 1), VolumeReader.Read(path).Shape);
        var ex = Assert.Throws<VolumeFormatException>(() => VolumeReader.Read(path, Options(Monochrome1Handling.Invert, window: true)));
        Assert.Equal("WindowCenter", ex.Field);
    }

    [Fact]
    public void WindowIndexOutOfRangeNamesTheFileAndField()
    {
        var path = TestData.Golden("monochrome1/signed_sigmoid.dcm");
        var ex = Assert.Throws<VolumeFormatException>(() => VolumeReader.Read(path, Options(Monochrome1Handling.Invert, window: true, index: 2)));
        Assert.Contains("signed_sigmoid.dcm", ex.Message, StringComparison.Ordinal);
        Assert.Equal("WindowCenter", ex.Field);
    }
}
