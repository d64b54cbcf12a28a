using System.Text.Json;
using MedVlp.Testing;
using MedVlp.Volumes.IO;
using MedVlp.Volumes.IO.Nifti;

namespace MedVlp.Volumes.Tests.IO;

/// <summary>The NIfTI reader against nibabel on every real NIfTI file in the test data.</summary>
public sealed class NiftiReaderParityTests
{
    public static TheoryData<string> Loadable => [.. NiftiGolden.LoadableImages];

    [Fact]
    public void GoldenCoversTheRealFiles()
    {
        // Guards against an empty or mis-generated golden file making the theories below vacuous.
        Assert.True(NiftiGolden.LoadableImages.Count() >= 18, "expected the mricron, nibabel and ITK NIfTI files in nifti_info.json");
        Assert.Contains("mricron/ch2.nii.gz", NiftiGolden.LoadableImages);
    }

    [Theory]
    [MemberData(nameof(Loadable))]
    public void MatchesNibabel(string file)
    {
        var golden = NiftiGolden.All[file];
        var volume = VolumeReader.Read(TestData.File(file));

        var shape = golden.GetProperty("shape").EnumerateArray().Select(x => x.GetInt32()).ToArray();
        Assert.Equal(shape.Length > 0 ? shape[0] : 1, volume.Shape.X);
        Assert.Equal(shape.Length > 1 ? shape[1] : 1, volume.Shape.Y);
        Assert.Equal(shape.Length > 2 ? shape[2] : 1, volume.Shape.Z);
        Assert.Equal(golden.GetProperty("frames").GetInt32(), volume.Frames);
        Assert.Equal(shape.Skip(3), volume.FrameShape);
        Assert.Equal(golden.GetProperty("format").GetString(), volume.Metadata.Format);
        Assert.Equal(golden.GetProperty("datatype").GetString(), volume.Metadata.SourceDataType.ToNumPyName());
        Assert.Equal(golden.GetProperty("orientation").GetString(), volume.Orientation);

        var spacing = NiftiGolden.Doubles(golden.GetProperty("spacing"));
        for (var n = 0; n < 3; n++)
        {
            Assert.Equal(spacing[n], volume.Spacing[n], 6);
        }

        var affine = NiftiGolden.Matrix(golden.GetProperty("affine"));
        for (var r = 0; r < 4; r++)
        {
            for (var c = 0; c < 4; c++)
            {
                Assert.True(Math.Abs(affine[r][c] - volume.Affine[r, c]) <= 1e-4, $"affine[{r},{c}]: nibabel {affine[r][c]}, MedVlp {volume.Affine[r, c]}");
            }
        }

        var stats = volume.GetStatistics(0);
        Assert.Equal(golden.GetProperty("nan_count").GetInt64(), stats.NaNCount);
        AssertClose(golden.GetProperty("min").GetDouble(), stats.Min, "min");
        AssertClose(golden.GetProperty("max").GetDouble(), stats.Max, "max");
        AssertClose(golden.GetProperty("mean").GetDouble(), stats.Mean, "mean");

        foreach (var name in new[] { "samples", "samples_nonzero" })
        {
            if (!golden.TryGetProperty(name, out var samples))
            {
                continue;
            }

            foreach (var s in samples.EnumerateArray())
            {
                var ijk = s.EnumerateArray().ToArray();
                var (i, j, k) = (ijk[0].GetInt32(), ijk[1].GetInt32(), ijk[2].GetInt32());
                var actual = volume[i, j, k];
                if (ijk[3].ValueKind == JsonValueKind.Null)
                {
                    Assert.True(float.IsNaN(actual), $"voxel ({i},{j},{k}) should be NaN");
                }
                else
                {
                    AssertClose(ijk[3].GetDouble(), actual, $"voxel ({i},{j},{k})");
                }
            }
        }
    }

    [Fact]
    public void FirstFrameOnlySkipsTheOtherFrames()
    {
        var path = TestData.File("nibabel/functional.nii");
        var all = VolumeReader.Read(path);
        var first = VolumeReader.Read(path, new VolumeReadOptions { FirstFrameOnly = true });
        Assert.Equal(20, all.Frames);
        Assert.Equal(1, first.Frames);
        Assert.Equal(all.GetFrame(0).ToArray(), first.GetFrame(0).ToArray());
    }

    [Fact]
    public void HeaderReadAloneMatchesTheVolume()
    {
        var header = NiftiReader.ReadHeader(TestData.File("nibabel/anatomical.nii"));
        Assert.True(header.IsBigEndian);
        Assert.Equal(1, header.Version);
        Assert.Equal(4, header.DatatypeCode);
    }

    private static void AssertClose(double expected, double actual, string what)
    {
        var tolerance = 1e-6 * Math.Max(1, Math.Abs(expected));
        Assert.True(Math.Abs(expected - actual) <= tolerance, $"{what}: nibabel {expected}, MedVlp {actual}");
    }
}
