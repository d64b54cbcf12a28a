using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text.Json;
using MedVlp.Testing;
using MedVlp.Volumes.IO;

namespace MedVlp.Volumes.Tests;

/// <summary>Reorientation against nibabel's as_closest_canonical / as_reoriented (tests/golden/make_orientation_golden.py).</summary>
public sealed class ReorientationParityTests
{
    private static readonly Lazy<JsonDocument> Golden = new(() => JsonDocument.Parse(File.ReadAllText(TestData.Golden("orientation.json"))));

    public static TheoryData<string> Cases()
    {
        var data = new TheoryData<string>();
        foreach (var p in Golden.Value.RootElement.EnumerateObject())
        {
            if (!p.Name.StartsWith('_'))
            {
                data.Add(p.Name);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesNibabel(string key)
    {
        var g = Golden.Value.RootElement.GetProperty(key);
        var parts = key.Split('|');
        var volume = VolumeReader.Read(TestData.File(parts[0]));
        var result = parts[1] == "RAS" ? volume.ToCanonical() : volume.Reorient(parts[1]);

        var shape = g.GetProperty("shape").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        Assert.Equal(new VolumeShape(shape[0], shape[1], shape[2]), result.Shape);
        Assert.Equal(shape.Skip(3).ToArray(), result.FrameShape.ToArray());
        Assert.Equal(g.GetProperty("orientation").GetString(), result.Orientation);
        var affine = g.GetProperty("affine").EnumerateArray().Select(r => r.EnumerateArray().Select(e => e.GetDouble()).ToArray()).ToArray();
        for (var r = 0; r < 4; r++)
        {
            for (var c = 0; c < 4; c++)
            {
                Assert.True(Math.Abs(affine[r][c] - result.Affine[r, c]) <= 1e-6, $"affine[{r},{c}] = {result.Affine[r, c]}, nibabel {affine[r][c]}");
            }
        }

        foreach (var s in g.GetProperty("samples").EnumerateArray())
        {
            var v = s.EnumerateArray().ToArray();
            var frame = result.GetFrame(v[3].GetInt32());
            var idx = v[0].GetInt32() + (result.Shape.X * (v[1].GetInt32() + (result.Shape.Y * v[2].GetInt32())));
            Assert.Equal((float)v[4].GetDouble(), frame[idx]);
        }

        var sha = Convert.ToHexStringLower(SHA256.HashData(MemoryMarshal.AsBytes(result.Data.Span)));
        Assert.Equal(g.GetProperty("sha256_f32").GetString(), sha);
    }

    [Fact]
    public void CanonicalOfCanonicalIsTheSameVolume()
    {
        var v = VolumeReader.Read(TestData.File("nibabel/anatomical.nii")).ToCanonical();
        Assert.Same(v, v.ToCanonical());
        Assert.Equal("RAS", v.Orientation);
    }

    [Fact]
    public void RoundTripRestoresVoxelsAndAffine()
    {
        var v = VolumeReader.Read(TestData.File("nibabel/example4d.nii.gz"));
        var back = v.Reorient("SPR").Reorient(v.Orientation);
        Assert.Equal(v.Shape, back.Shape);
        Assert.True(v.Affine.ApproximatelyEquals(back.Affine, 1e-9));
        Assert.True(v.Data.Span.SequenceEqual(back.Data.Span));
    }

    [Theory]
    [InlineData("RAR")]
    [InlineData("XYZ")]
    [InlineData("RA")]
    public void InvalidCodesAreRejected(string code)
    {
        var v = Volume.Zeros(new VolumeShape(2, 3, 4));
        Assert.Throws<ArgumentException>(() => v.Reorient(code));
    }
}
