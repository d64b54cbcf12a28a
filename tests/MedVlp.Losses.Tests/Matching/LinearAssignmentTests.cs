using System.Globalization;
using System.Text.Json;
using MedVlp.Testing;

namespace MedVlp.Losses.Tests.Matching;

/// <summary>LinearAssignment against scipy.optimize.linear_sum_assignment (tests/golden/make_lap_golden.py) and brute force.</summary>
public sealed class LinearAssignmentTests
{
    public static TheoryData<string> GoldenCases()
    {
        var data = new TheoryData<string>();
        foreach (var c in LoadGolden())
        {
            data.Add(c.Name);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(GoldenCases))]
    public void OptimalCostEqualsScipy_Float(string name)
    {
        var c = LoadGolden().Single(x => x.Name == name);
        var m = c.Float();
        if (c.Infeasible)
        {
            Assert.Throws<InfeasibleAssignmentException>(() => LinearAssignment.Solve(m, c.Maximize));
            return;
        }

        var assignment = LinearAssignment.Solve(m, c.Maximize);
        CheckValid(assignment, c.Rows, c.Cols, c.Pairs, (i, j) => m[i, j], c.Maximize);
        var total = LinearAssignment.TotalCost(m, assignment);
        Assert.True(Math.Abs(total - c.Optimal!.Value) <= 1e-5 * Math.Max(1.0, c.AbsSum), $"{name}: {total} vs scipy {c.Optimal}");
    }

    [Theory]
    [MemberData(nameof(GoldenCases))]
    public void OptimalCostEqualsScipy_Double(string name)
    {
        var c = LoadGolden().Single(x => x.Name == name);
        var m = c.Double();
        if (c.Infeasible)
        {
            Assert.Throws<InfeasibleAssignmentException>(() => LinearAssignment.Solve(m, c.Maximize));
            return;
        }

        var assignment = LinearAssignment.Solve(m, c.Maximize);
        CheckValid(assignment, c.Rows, c.Cols, c.Pairs, (i, j) => m[i, j], c.Maximize);
        var total = LinearAssignment.TotalCost(m, assignment);
        Assert.True(Math.Abs(total - c.Optimal!.Value) <= 1e-9 * Math.Max(1.0, c.AbsSum), $"{name}: {total} vs scipy {c.Optimal}");
    }

    [Fact]
    public void MatchesBruteForceOnSmallRandomMatrices()
    {
        var rng = new Random(7);
        for (var trial = 0; trial < 400; trial++)
        {
            var rows = rng.Next(1, 7);
            var cols = rng.Next(1, 7);
            var integer = trial % 2 == 0;
            var maximize = trial % 3 == 0;
            var m = new float[rows, cols];
            for (var i = 0; i < rows; i++)
            {
                for (var j = 0; j < cols; j++)
                {
                    m[i, j] = integer ? rng.Next(0, 3) : (float)rng.NextDouble();
                }
            }

            var assignment = LinearAssignment.Solve(m, maximize);
            CheckValid(assignment, rows, cols, Math.Min(rows, cols), (i, j) => m[i, j], maximize);
            var best = BruteForce(m, maximize);
            var total = LinearAssignment.TotalCost(m, assignment);
            Assert.True(Math.Abs(total - best) < 1e-5, $"trial {trial} ({rows}x{cols}, maximize {maximize}): {total} vs brute force {best}");
        }
    }

    [Fact]
    public void SpanOverloadAndBufferOverloadAgreeWithArrayOverload()
    {
        var rng = new Random(3);
        var m = new float[13, 21];
        var flat = new float[13 * 21];
        for (var i = 0; i < 13; i++)
        {
            for (var j = 0; j < 21; j++)
            {
                m[i, j] = flat[(i * 21) + j] = (float)rng.NextDouble();
            }
        }

        var a = LinearAssignment.Solve(m);
        var b = LinearAssignment.Solve(flat, 13, 21);
        var buffer = new int[13];
        LinearAssignment.Solve(flat, 13, 21, buffer);
        Assert.Equal(a, b);
        Assert.Equal(a, buffer);
    }

    [Fact]
    public void MoreRowsThanColumnsLeavesUnassignedRowsAtMinusOne()
    {
        // Rows 1 and 3 are cheap for columns 0 and 1; rows 0, 2, 4 must stay unassigned.
        var m = new float[,] { { 9, 9 }, { 1, 5 }, { 9, 9 }, { 5, 1 }, { 9, 9 } };
        var a = LinearAssignment.Solve(m);
        Assert.Equal(new[] { -1, 0, -1, 1, -1 }, a);
    }

    [Fact]
    public void EmptyMatricesGiveEmptyOrUnassigned()
    {
        Assert.Empty(LinearAssignment.Solve(new float[0, 0]));
        Assert.Equal(new[] { -1, -1 }, LinearAssignment.Solve(new float[2, 0]));
        Assert.Empty(LinearAssignment.Solve(new float[0, 4]));
    }

    [Fact]
    public void NaNAndWrongSignInfinityAreRejected()
    {
        var m = new float[,] { { 1, 2 }, { float.NaN, 4 } };
        var e = Assert.Throws<ArgumentException>(() => LinearAssignment.Solve(m));
        Assert.Contains("NaN", e.Message, StringComparison.Ordinal);
        var n = new float[,] { { 1, float.NegativeInfinity }, { 3, 4 } };
        Assert.Throws<ArgumentException>(() => LinearAssignment.Solve(n));
        var p = new double[,] { { 1, double.PositiveInfinity }, { 3, 4 } };
        Assert.Throws<ArgumentException>(() => LinearAssignment.Solve(p, maximize: true));
        Assert.Throws<ArgumentException>(() => LinearAssignment.Solve(new float[6], 2, 2));
    }

    [Fact]
    public void InfeasibleThrowsTheDedicatedException()
    {
        var inf = float.PositiveInfinity;
        var m = new float[,] { { 1, inf, inf }, { 2, inf, inf }, { 3, 4, 5 } };
        var e = Assert.Throws<InfeasibleAssignmentException>(() => LinearAssignment.Solve(m));
        Assert.Contains("infeasible", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LargeRandomAndTiedMatricesGiveValidPermutations()
    {
        // Larger than the golden cases: checks validity and the optimality certificate (no improving 2-swap).
        var rng = new Random(11);
        foreach (var n in new[] { 200, 301 })
        {
            var m = new float[n, n];
            for (var i = 0; i < n; i++)
            {
                for (var j = 0; j < n; j++)
                {
                    m[i, j] = n == 301 ? rng.Next(0, 4) : (float)rng.NextDouble();
                }
            }

            var a = LinearAssignment.Solve(m);
            CheckValid(a, n, n, n, (i, j) => m[i, j], maximize: false);
            for (var i = 0; i < n; i++)
            {
                for (var k = i + 1; k < n; k++)
                {
                    var swapGain = (m[i, a[i]] + m[k, a[k]]) - (m[i, a[k]] + m[k, a[i]]);
                    Assert.True(swapGain <= 1e-4f, $"n={n}: swapping rows {i},{k} improves by {swapGain}");
                }
            }
        }
    }

    private static double BruteForce(float[,] m, bool maximize)
    {
        int rows = m.GetLength(0), cols = m.GetLength(1);
        var transpose = rows > cols;
        int r = transpose ? cols : rows, c = transpose ? rows : cols;
        var used = new bool[c];
        var best = maximize ? double.NegativeInfinity : double.PositiveInfinity;
        void Walk(int i, double acc)
        {
            if (i == r)
            {
                best = maximize ? Math.Max(best, acc) : Math.Min(best, acc);
                return;
            }

            for (var j = 0; j < c; j++)
            {
                if (!used[j])
                {
                    used[j] = true;
                    Walk(i + 1, acc + (transpose ? m[j, i] : m[i, j]));
                    used[j] = false;
                }
            }
        }

        Walk(0, 0);
        return best;
    }

    private static void CheckValid(int[] assignment, int rows, int cols, int pairs, Func<int, int, double> entry, bool maximize)
    {
        Assert.Equal(rows, assignment.Length);
        var seen = new HashSet<int>();
        var assigned = 0;
        for (var i = 0; i < rows; i++)
        {
            var j = assignment[i];
            Assert.InRange(j, -1, cols - 1);
            if (j < 0)
            {
                continue;
            }

            assigned++;
            Assert.True(seen.Add(j), $"column {j} assigned twice");
            Assert.True(double.IsFinite(entry(i, j)), $"forbidden pair ({i},{j}) chosen (maximize {maximize})");
        }

        Assert.Equal(pairs, assigned);
    }

    private static List<GoldenCase> LoadGolden()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(TestData.Golden("lap_golden.json")));
        var list = new List<GoldenCase>();
        foreach (var e in doc.RootElement.EnumerateArray())
        {
            var cost = e.GetProperty("cost").EnumerateArray().Select(x => x.ValueKind == JsonValueKind.String
                ? double.Parse(x.GetString()!.Replace("inf", "Infinity", StringComparison.Ordinal), CultureInfo.InvariantCulture)
                : x.GetDouble()).ToArray();
            var opt = e.GetProperty("optimal");
            list.Add(new GoldenCase(
                e.GetProperty("name").GetString()!,
                e.GetProperty("rows").GetInt32(),
                e.GetProperty("cols").GetInt32(),
                e.GetProperty("maximize").GetBoolean(),
                cost,
                opt.ValueKind == JsonValueKind.Null ? null : opt.GetDouble(),
                e.GetProperty("pairs").GetInt32(),
                e.GetProperty("infeasible").GetBoolean()));
        }

        return list;
    }

    private sealed record GoldenCase(string Name, int Rows, int Cols, bool Maximize, double[] Cost, double? Optimal, int Pairs, bool Infeasible)
    {
        public double AbsSum => Cost.Where(double.IsFinite).Sum(Math.Abs);

        public float[,] Float()
        {
            var m = new float[Rows, Cols];
            for (var i = 0; i < Rows; i++)
            {
                for (var j = 0; j < Cols; j++)
                {
                    m[i, j] = (float)Cost[(i * Cols) + j];
                }
            }

            return m;
        }

        public double[,] Double()
        {
            // The float32 values widened exactly, as scipy saw them.
            var m = new double[Rows, Cols];
            for (var i = 0; i < Rows; i++)
            {
                for (var j = 0; j < Cols; j++)
                {
                    m[i, j] = (float)Cost[(i * Cols) + j];
                }
            }

            return m;
        }
    }
}
