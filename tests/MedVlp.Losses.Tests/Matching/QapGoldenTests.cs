using System.Text.Json;
using MedVlp.Testing;
using Xunit.Abstractions;

namespace MedVlp.Losses.Tests.Matching;

/// <summary>FrankWolfeQapSolver against scipy.optimize.quadratic_assignment(method='faq') (tests/golden/make_qap_golden.py).</summary>
public sealed class QapGoldenTests(ITestOutputHelper output)
{
    [Fact]
    public void MatchesOrBeatsScipyFaqObjective()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(TestData.Golden("qap_golden.json")));
        foreach (var c in doc.RootElement.EnumerateArray())
        {
            var n = c.GetProperty("n").GetInt32();
            var a = To2D(c.GetProperty("A"), n);
            var b = To2D(c.GetProperty("B"), n);
            var result = new int[n];
            new FrankWolfeQapSolver().Solve(QapSolverTests.KoopmansBeckmann(a, b, new float[n * n]), result);
            var ours = Objective(a, b, result);
            var scipy = c.GetProperty("scipy_objective").GetDouble();

            // scipy's reported objective must be what its permutation scores (checks our reading of its convention).
            Assert.Equal(scipy, Objective(a, b, c.GetProperty("scipy_col_ind").EnumerateArray().Select(x => x.GetInt32()).ToArray()), 6);
            output.WriteLine($"{c.GetProperty("kind").GetString()} n={n}: ours {ours:F4}, scipy FAQ {scipy:F4}");
            if (c.TryGetProperty("planted", out var planted))
            {
                Assert.Equal(planted.EnumerateArray().Select(x => x.GetInt32()).ToArray(), result);
            }

            Assert.True(ours >= scipy * (1 - 1e-6), $"n={n}: objective {ours} below scipy FAQ {scipy}");
        }
    }

    private static double Objective(double[,] a, double[,] b, int[] s)
    {
        var total = 0.0;
        for (var i = 0; i < s.Length; i++)
        {
            for (var j = 0; j < s.Length; j++)
            {
                total += a[i, j] * b[s[i], s[j]];
            }
        }

        return total;
    }

    private static double[,] To2D(JsonElement values, int n)
    {
        var flat = values.EnumerateArray().Select(x => x.GetDouble()).ToArray();
        var m = new double[n, n];
        for (var i = 0; i < n; i++)
        {
            for (var j = 0; j < n; j++)
            {
                m[i, j] = flat[(i * n) + j];
            }
        }

        return m;
    }
}
