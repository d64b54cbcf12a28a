using MedVlp.Synthetic;
using MedVlp.Volumes;
using MedVlp.Volumes.Transforms;
using Xunit;

namespace MedVlp.Tests.Synthetic;

public sealed class SyntheticChestDatasetTests
{
    // A coarse grid keeps the tests fast; the anatomy is the same at any spacing.
    private static readonly SyntheticChestOptions Coarse = new() { InPlaneSpacingMm = (4, 4), SliceSpacingMm = (5, 5) };
    private static readonly Lazy<IReadOnlyList<SyntheticChestCase>> Cases = new(() => SyntheticChestDataset.Generate(40, seed: 11, Coarse));

    [Fact]
    public void SameSeedSameCase()
    {
        var a = SyntheticChestDataset.GenerateCase(3, 5, Coarse);
        var b = SyntheticChestDataset.GenerateCase(3, 5, Coarse);
        Assert.Equal(a.Report, b.Report);
        Assert.True(a.Volume.Data.Span.SequenceEqual(b.Volume.Data.Span));
        Assert.NotEqual(a.Report + a.Volume.Data.Span[12345], SyntheticChestDataset.GenerateCase(3, 6, Coarse).Report + a.Volume.Data.Span[12345]);
    }

    [Fact]
    public void EveryFindingOccursAndReportsMentionPresentFindingsOnly()
    {
        foreach (var finding in ChestFindingExtensions.All)
        {
            var positives = Cases.Value.Count(c => c.Findings[finding]);
            Assert.InRange(positives, 5, 35);
        }

        foreach (var c in Cases.Value)
        {
            var findings = c.Report[..c.Report.IndexOf("IMPRESSION:", StringComparison.Ordinal)];
            var sentences = findings["FINDINGS: ".Length..].Split(". ", StringSplitOptions.RemoveEmptyEntries);
            foreach (var finding in ChestFindingExtensions.All)
            {
                var mentions = sentences.Where(s => Keywords(finding).Any(k => s.Contains(k, StringComparison.OrdinalIgnoreCase))).ToList();
                var affirmed = mentions.Where(s => !IsNegated(s)).ToList();
                if (c.Findings[finding])
                {
                    Assert.True(affirmed.Count > 0, $"case {c.Index}: {finding} is present but the report does not say so: {c.Report}");
                }
                else
                {
                    Assert.True(affirmed.Count == 0, $"case {c.Index}: {finding} is absent but the report affirms it: {string.Join(" | ", affirmed)}");
                }
            }
        }
    }

    [Fact]
    public void FocalFindingsAreVisibleWhereTheyAre()
    {
        var checkedLesions = 0;
        foreach (var c in Cases.Value)
        {
            foreach (var lesion in c.Lesions)
            {
                var hu = lesion.Finding switch
                {
                    ChestFinding.LungNodule => MedianWithin(c.Volume, lesion.X, lesion.Y, lesion.Z, Math.Max(2.5, lesion.RadiusMm - 2.5)),
                    ChestFinding.Consolidation => MedianWithin(c.Volume, lesion.X, lesion.Y, lesion.Z, 0.5 * lesion.RadiusMm),
                    ChestFinding.PleuralEffusion => MedianWithin(c.Volume, lesion.X, lesion.Y - 15, lesion.Z - 35, 8),
                    _ => double.NaN,
                };
                if (double.IsNaN(hu))
                {
                    continue;
                }

                // The median voxel is soft tissue or fluid (about 10-60 HU), far from aerated lung (-850).
                Assert.True(hu is > -150 and < 120, $"case {c.Index}: {lesion} reads {hu:F0} HU");
                checkedLesions++;
            }
        }

        Assert.True(checkedLesions >= 15, $"only {checkedLesions} lesions checked");
    }

    [Fact]
    public void EmphysemaLowersLungDensityAndCardiomegalyShrinksTheLungsBesideTheHeart()
    {
        var emphysema = Cases.Value.Where(c => c.Findings[ChestFinding.Emphysema]).Select(c => LungMedian(c.Volume)).ToList();
        var normal = Cases.Value.Where(c => !c.Findings[ChestFinding.Emphysema]).Select(c => LungMedian(c.Volume)).ToList();
        Assert.True(emphysema.Max() < normal.Min(), $"emphysema lung medians {string.Join(",", emphysema)} vs others {string.Join(",", normal)}");

        bool Other(SyntheticChestCase c) => c.Findings[ChestFinding.PleuralEffusion] || c.Findings[ChestFinding.Consolidation];
        var big = Cases.Value.Where(c => c.Findings[ChestFinding.Cardiomegaly] && !Other(c)).Select(c => LungFractionAtHeart(c.Volume)).ToList();
        var small = Cases.Value.Where(c => !c.Findings[ChestFinding.Cardiomegaly] && !Other(c)).Select(c => LungFractionAtHeart(c.Volume)).ToList();
        Assert.NotEmpty(big);
        Assert.NotEmpty(small);
        Assert.True(big.Average() < small.Average() - 0.04, $"lung fraction at heart level: cardiomegaly {big.Average():F3}, normal heart {small.Average():F3}");
    }

    [Fact]
    public void LpsAndRasStorageHoldTheSameAnatomy()
    {
        var noiseless = new SyntheticChestOptions { InPlaneSpacingMm = (4, 4), SliceSpacingMm = (5, 5), NoiseHu = (0, 0) };
        var lps = SyntheticChestDataset.GenerateCase(2, 4, new SyntheticChestOptions { InPlaneSpacingMm = (4, 4), SliceSpacingMm = (5, 5), NoiseHu = (0, 0), Orientation = ChestStorageOrientation.Lps });
        var ras = SyntheticChestDataset.GenerateCase(2, 4, new SyntheticChestOptions { InPlaneSpacingMm = (4, 4), SliceSpacingMm = (5, 5), NoiseHu = (0, 0), Orientation = ChestStorageOrientation.Ras });
        Assert.Equal("LPS", lps.Volume.Orientation);
        Assert.Equal("RAS", ras.Volume.Orientation);
        var a = lps.Volume.ToCanonical();
        Assert.True(a.Affine.ApproximatelyEquals(ras.Volume.Affine, 1e-9), $"{a.Affine} vs {ras.Volume.Affine}");
        var differing = 0;
        var x = a.Data.Span;
        var y = ras.Volume.Data.Span;
        for (var n = 0; n < x.Length; n++)
        {
            differing += x[n] == y[n] ? 0 : 1;
        }

        Assert.True(differing < x.Length / 10000, $"{differing} of {x.Length} voxels differ");

        // The right lung is on the patient's right (RAS x > 0), the heart's centre on the left.
        Assert.True(ValueAt(lps.Volume, 75, -5, 30) < -700);
        Assert.True(ValueAt(ras.Volume, 75, -5, 30) < -700);
        _ = noiseless;
    }

    [Fact]
    public void ColipriPresetMakesTheModelInput()
    {
        var c = SyntheticChestDataset.GenerateCase(1, 0, new SyntheticChestOptions { Orientation = ChestStorageOrientation.Lps });
        Assert.True(c.Volume.Spacing.Z > c.Volume.Spacing.X, "slices are thicker than the in-plane spacing");
        var input = TransformPresets.Colipri().Apply(c.Volume);
        Assert.Equal(new VolumeShape(192, 192, 192), input.Shape);
        Assert.Equal("SAR", input.Orientation);
        var stats = input.GetStatistics();
        Assert.True(stats.Min >= -1 && stats.Max <= 1, stats.ToString());
        Assert.True(stats.Max > 0.1, "bone survives the HU window");
    }

    private static string[] Keywords(ChestFinding f) => f switch
    {
        ChestFinding.LungNodule => ["nodule"],
        ChestFinding.PleuralEffusion => ["effusion"],
        ChestFinding.Cardiomegaly => ["cardiomegaly", "heart", "cardiac"],
        ChestFinding.Emphysema => ["emphysema"],
        ChestFinding.Consolidation => ["consolidation"],
        _ => [],
    };

    private static bool IsNegated(string sentence) =>
        sentence.StartsWith("No ", StringComparison.Ordinal) || sentence.Contains(" no ", StringComparison.Ordinal) || sentence.Contains("is normal", StringComparison.Ordinal);

    private static float ValueAt(Volume v, double x, double y, double z)
    {
        var (i, j, k) = v.Affine.Inverse().Apply(x, y, z);
        return v[(int)Math.Round(i), (int)Math.Round(j), (int)Math.Round(k)];
    }

    private static double MedianWithin(Volume v, double x, double y, double z, double radius)
    {
        var inv = v.Affine.Inverse();
        var (ci, cj, ck) = inv.Apply(x, y, z);
        var values = new List<double>();
        var reach = (int)Math.Ceiling(radius / Math.Min(v.Spacing.X, v.Spacing.Z)) + 1;
        for (var k = (int)ck - reach; k <= (int)ck + reach; k++)
        {
            for (var j = (int)cj - reach; j <= (int)cj + reach; j++)
            {
                for (var i = (int)ci - reach; i <= (int)ci + reach; i++)
                {
                    if (i < 0 || j < 0 || k < 0 || i >= v.Shape.X || j >= v.Shape.Y || k >= v.Shape.Z)
                    {
                        continue;
                    }

                    var (wx, wy, wz) = v.Affine.Apply(i, j, k);
                    if (((wx - x) * (wx - x)) + ((wy - y) * (wy - y)) + ((wz - z) * (wz - z)) <= radius * radius)
                    {
                        values.Add(v[i, j, k]);
                    }
                }
            }
        }

        return values.Count == 0 ? double.NaN : values.Order().ElementAt(values.Count / 2);
    }

    private static double LungMedian(Volume v)
    {
        var lung = v.Data.ToArray().Where(h => h is > -990 and < -600).Order().ToArray();
        return lung[lung.Length / 2];
    }

    private static double LungFractionAtHeart(Volume v)
    {
        var (_, _, kf) = v.Affine.Inverse().Apply(0, 0, -40);
        var k = (int)Math.Round(kf);
        int body = 0, lung = 0;
        for (var j = 0; j < v.Shape.Y; j++)
        {
            for (var i = 0; i < v.Shape.X; i++)
            {
                var h = v[i, j, k];
                if (h > -995)
                {
                    body++;
                    lung += h < -600 ? 1 : 0;
                }
            }
        }

        return (double)lung / body;
    }
}
