using MedVlp.Synthetic;
using MedVlp.Volumes;

namespace MedVlp.Tests;

public sealed class SyntheticBrainDatasetTests
{
    [Fact]
    public void SameSeedGivesTheSameCasesAndAnotherSeedDifferentOnes()
    {
        var a = SyntheticBrainDataset.Generate(6, seed: 3);
        var b = SyntheticBrainDataset.Generate(6, seed: 3);
        var c = SyntheticBrainDataset.Generate(6, seed: 4);
        for (var n = 0; n < 6; n++)
        {
            Assert.Equal(a[n].Report, b[n].Report);
            Assert.True(a[n].Volume.Data.Span.SequenceEqual(b[n].Volume.Data.Span));
            Assert.False(a[n].Volume.Data.Span.SequenceEqual(c[n].Volume.Data.Span));
        }

        // A case depends only on (seed, index): generating it alone or after others gives the same voxels.
        var alone = SyntheticBrainDataset.GenerateCase(3, 4);
        Assert.True(alone.Volume.Data.Span.SequenceEqual(a[4].Volume.Data.Span));
        var continued = SyntheticBrainDataset.Generate(2, seed: 3, firstIndex: 4);
        Assert.Equal(a[5].Report, continued[1].Report);
    }

    [Fact]
    public void VolumesAreRealRasVolumesWithSpacingAndAffine()
    {
        var options = new SyntheticBrainOptions();
        var c = SyntheticBrainDataset.GenerateCase(1, 0, options);
        Assert.Equal(options.Shape, c.Volume.Shape);
        Assert.Equal("RAS", c.Volume.Orientation);
        Assert.Equal(Spacing.Isotropic(3), c.Volume.Spacing);
        // The grid is centred on the world origin.
        var centre = c.Volume.Affine.Apply((options.Shape.X - 1) / 2.0, (options.Shape.Y - 1) / 2.0, (options.Shape.Z - 1) / 2.0);
        Assert.Equal(0, centre.X, 6);
        Assert.Equal(0, centre.Y, 6);
        Assert.Equal(0, centre.Z, 6);
        var stats = c.Volume.GetStatistics();
        Assert.True(stats.Min >= 0, "Rician magnitudes are non-negative");
        Assert.True(stats.Max > 100, "the head is much brighter than the air");
    }

    [Fact]
    public void ClassesAreBalancedAndReportsFollowMedBlipsForm()
    {
        var cases = SyntheticBrainDataset.Generate(30, seed: 11);
        foreach (var d in CognitiveDiagnosisNames.All)
        {
            Assert.Equal(10, cases.Count(c => c.Diagnosis == d));
        }

        foreach (var c in cases)
        {
            Assert.EndsWith($"The diagnosis is {c.Diagnosis.LabelName()}.", c.Report, StringComparison.Ordinal);
            Assert.Contains(c.Subject.Age.ToString(System.Globalization.CultureInfo.InvariantCulture), c.Report, StringComparison.Ordinal);
            Assert.True(c.Report.Contains("MMSE", StringComparison.Ordinal) || c.Report.Contains("Mini-mental", StringComparison.Ordinal), c.Report);
            Assert.Contains(c.Subject.Mmse.ToString(System.Globalization.CultureInfo.InvariantCulture), c.Report, StringComparison.Ordinal);
        }

        // MMSE is correlated with the class: every AD score is below every CN score in this sample.
        var cnMin = cases.Where(c => c.Diagnosis == CognitiveDiagnosis.CognitivelyNormal).Min(c => c.Subject.Mmse);
        var adMax = cases.Where(c => c.Diagnosis == CognitiveDiagnosis.Dementia).Max(c => c.Subject.Mmse);
        Assert.True(adMax < cnMin, $"AD max MMSE {adMax} should be below CN min {cnMin}");
        // The wording varies.
        Assert.True(cases.Select(c => c.Report[..Math.Min(12, c.Report.Length)]).Distinct().Count() > 3);
    }

    [Fact]
    public void AnatomyChangesWithSeverity()
    {
        var cases = SyntheticBrainDataset.Generate(60, seed: 5);
        double Mean(CognitiveDiagnosis d, Func<SyntheticSubject, double> f) => cases.Where(c => c.Diagnosis == d).Average(c => f(c.Subject));
        var cn = CognitiveDiagnosis.CognitivelyNormal;
        var mci = CognitiveDiagnosis.MildCognitiveImpairment;
        var ad = CognitiveDiagnosis.Dementia;
        Assert.True(Mean(cn, s => s.VentricleScale) < Mean(mci, s => s.VentricleScale));
        Assert.True(Mean(mci, s => s.VentricleScale) < Mean(ad, s => s.VentricleScale));
        Assert.True(Mean(cn, s => s.CortexThicknessMm) > Mean(ad, s => s.CortexThicknessMm));

        // In the images: the fraction of dark (CSF-like) voxels inside the central box grows with the class.
        double DarkFraction(SyntheticBrainCase c)
        {
            var v = c.Volume;
            var stats = v.GetStatistics();
            var threshold = 0.3 * stats.Max;
            int dark = 0, total = 0;
            for (var k = v.Shape.Z * 2 / 5; k < v.Shape.Z * 3 / 5; k++)
            {
                for (var j = v.Shape.Y * 2 / 5; j < v.Shape.Y * 3 / 5; j++)
                {
                    for (var i = v.Shape.X * 3 / 10; i < v.Shape.X * 7 / 10; i++)
                    {
                        total++;
                        dark += v[i, j, k] < threshold ? 1 : 0;
                    }
                }
            }

            return (double)dark / total;
        }

        double MeanDark(CognitiveDiagnosis d) => cases.Where(c => c.Diagnosis == d).Average(DarkFraction);
        Assert.True(MeanDark(cn) < MeanDark(mci), $"CN {MeanDark(cn)} vs MCI {MeanDark(mci)}");
        Assert.True(MeanDark(mci) < MeanDark(ad), $"MCI {MeanDark(mci)} vs AD {MeanDark(ad)}");
    }
}
