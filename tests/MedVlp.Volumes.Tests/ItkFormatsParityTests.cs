using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text.Json;
using MedVlp.Testing;
using MedVlp.Volumes.IO;

namespace MedVlp.Volumes.Tests;

/// <summary>MetaImage and NRRD files of the ITK examples against tests/golden/make_itk_golden.py, and .mhd/.nhdr twins against each other.</summary>
public sealed class ItkFormatsParityTests
{
    private static readonly Lazy<JsonDocument> Golden = new(() => JsonDocument.Parse(File.ReadAllText(TestData.Golden("itk_info.json"))));

    public static TheoryData<string> Files()
    {
        var data = new TheoryData<string>();
        foreach (var p in Golden.Value.RootElement.EnumerateObject().Where(p => !p.Name.StartsWith('_')))
        {
            data.Add(p.Name);
        }

        return data;
    }

    public static TheoryData<string> Twins() =>
    [
        "itk/BrainProtonDensitySliceBorder20",
        "itk/BrainProtonDensitySliceBorder20DirectionPlus30",
        "itk/BrainProtonDensitySliceShifted13x17y",
        "itk/BrainProtonDensitySliceShifted13x17yDirectionPlus30",
        "itk/BrainT1SliceBorder20DirectionPlus30",
    ];

    [Theory]
    [MemberData(nameof(Files))]
    public void MatchesTheIndependentReader(string rel)
    {
        var g = Golden.Value.RootElement.GetProperty(rel);
        var v = VolumeReader.Read(TestData.File(rel));
        var shape = g.GetProperty("shape").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        Assert.Equal(new VolumeShape(shape[0], shape[1], shape[2]), v.Shape);
        Assert.Equal(g.GetProperty("frames").GetInt32(), v.Frames);
        Assert.Equal(g.GetProperty("datatype").GetString(), v.Metadata.SourceDataType.ToNumPyName());
        Assert.Equal(rel.EndsWith(".nhdr", StringComparison.Ordinal) ? "nrrd" : "metaimage", v.Metadata.Format);
        NiftiWriterGoldenTests.AssertAffine(Affine.FromArray(NiftiWriterGoldenTests.ToMatrix(g.GetProperty("affine"))), v.Affine, 1e-9);
        foreach (var s in g.GetProperty("samples").EnumerateArray())
        {
            var frame = v.GetFrame(s[3].GetInt32());
            Assert.Equal((float)s[4].GetDouble(), frame[v.Index(s[0].GetInt32(), s[1].GetInt32(), s[2].GetInt32())]);
        }

        Assert.Equal(g.GetProperty("sha256_f32").GetString(), Convert.ToHexStringLower(SHA256.HashData(MemoryMarshal.AsBytes(v.Data.Span))));
    }

    [Theory]
    [MemberData(nameof(Twins))]
    public void MhdAndNhdrTwinsAgree(string stem)
    {
        var mhd = VolumeReader.Read(TestData.File(stem + ".mhd"));
        var nhdr = VolumeReader.Read(TestData.File(stem + ".nhdr"));
        Assert.Equal(mhd.Shape, nhdr.Shape);
        Assert.Equal(mhd.Frames, nhdr.Frames);
        // The .nhdr rounds cos(30 deg) to 6 digits, the .mhd to 7.
        NiftiWriterGoldenTests.AssertAffine(mhd.Affine, nhdr.Affine, 1e-6);
        Assert.Equal(mhd.Orientation, nhdr.Orientation);
        Assert.True(mhd.Data.Span.SequenceEqual(nhdr.Data.Span));
    }

    [Fact]
    public void RotatedTwinsAreRotatedByThirtyDegrees()
    {
        var plus = VolumeReader.Read(TestData.File("itk/BrainProtonDensitySliceBorder20DirectionPlus30.mhd"));
        // i's direction in LPS is (cos 30, sin 30); in RAS x and y are negated.
        Assert.Equal(-Math.Cos(Math.PI / 6), plus.Affine[0, 0], 6);
        Assert.Equal(-Math.Sin(Math.PI / 6), plus.Affine[1, 0], 6);
        Assert.Equal(1, plus.Affine[2, 2]);
        var minus = VolumeReader.Read(TestData.File("itk/BrainProtonDensitySliceBorder20DirectionMinus30.mhd"));
        Assert.Equal(Math.Sin(Math.PI / 6), minus.Affine[1, 0], 6);
        Assert.True(plus.Data.Span.SequenceEqual(minus.Data.Span));
    }
}
