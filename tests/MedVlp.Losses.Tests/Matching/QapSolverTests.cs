namespace MedVlp.Losses.Tests.Matching;

/// <summary>FrankWolfeQapSolver: planted permutations are recovered; the result is always a permutation.</summary>
public sealed class QapSolverTests
{
    [Theory]
    [InlineData(8)]
    [InlineData(15)]
    [InlineData(24)]
    public void RecoversThePlantedPermutationOfAWeightedGraphPair(int n)
    {
        for (var seed = 0; seed < 10; seed++)
        {
            var rng = new Random((n * 100) + seed);
            var a = RandomSymmetricWeights(rng, n);
            var p = Enumerable.Range(0, n).ToArray();
            rng.Shuffle(p);

            // B = P A P^T: B[p(i), p(j)] = A[i, j].
            var b = new double[n, n];
            for (var i = 0; i < n; i++)
            {
                for (var j = 0; j < n; j++)
                {
                    b[p[i], p[j]] = a[i, j];
                }
            }

            var problem = KoopmansBeckmann(a, b, new float[n * n]);
            var result = new int[n];
            new FrankWolfeQapSolver().Solve(problem, result);
            Assert.Equal(p, result);
        }
    }

    [Fact]
    public void RecoversThePlantedPermutationOfKnnGraphsWithNoisyVertexAffinity()
    {
        // k-NN graphs of random points, the second a permuted copy; vertex affinities so noisy that linear assignment
        // alone gets the matching wrong, edge affinities exp(-(length difference)^2 / s) resolve it.
        const int n = 30;
        var firstOrderCorrect = 0;
        var secondOrderCorrect = 0;
        for (var seed = 0; seed < 5; seed++)
        {
            var rng = new Random(seed);
            var pts = new double[n, 2];
            for (var i = 0; i < n; i++)
            {
                pts[i, 0] = rng.NextDouble();
                pts[i, 1] = rng.NextDouble();
            }

            var p = Enumerable.Range(0, n).ToArray();
            rng.Shuffle(p);
            var sim1 = new float[n * n];
            var sim2 = new float[n * n];
            for (var i = 0; i < n; i++)
            {
                for (var j = 0; j < n; j++)
                {
                    var d = -Dist(pts, i, j);
                    sim1[(i * n) + j] = (float)d;
                    sim2[(p[i] * n) + p[j]] = (float)d;
                }
            }

            var e1 = GraphEdges.KNearest(sim1, n, 5);
            var e2 = GraphEdges.KNearest(sim2, n, 5);
            var ke = new float[e1.Count * e2.Count];
            for (var e = 0; e < e1.Count; e++)
            {
                for (var f = 0; f < e2.Count; f++)
                {
                    var d = sim1[(e1.Sources[e] * n) + e1.Targets[e]] - sim2[(e2.Sources[f] * n) + e2.Targets[f]];
                    ke[(e * e2.Count) + f] = (float)Math.Exp(-d * d / 0.001);
                }
            }

            var v = new float[n * n];
            for (var i = 0; i < n; i++)
            {
                for (var a = 0; a < n; a++)
                {
                    v[(i * n) + a] = (float)(rng.NextDouble() + (a == p[i] ? 0.3 : 0));
                }
            }

            var first = LinearAssignment.Solve(v, n, n, maximize: true);
            var second = new int[n];
            new FrankWolfeQapSolver(new FrankWolfeQapOptions { RandomRestarts = 3 }).Solve(new MatchingProblem(n, n, v, e1, e2, ke), second);
            firstOrderCorrect += Enumerable.Range(0, n).Count(i => first[i] == p[i]);
            secondOrderCorrect += Enumerable.Range(0, n).Count(i => second[i] == p[i]);
        }

        Assert.True(firstOrderCorrect < 0.8 * 5 * n, $"the vertex term alone should not suffice ({firstOrderCorrect}/{5 * n})");
        Assert.True(secondOrderCorrect >= 0.95 * 5 * n, $"second order recovered {secondOrderCorrect}/{5 * n} (first order {firstOrderCorrect})");
    }

    [Fact]
    public void AlwaysReturnsAPermutation()
    {
        for (var seed = 0; seed < 300; seed++)
        {
            var rng = new Random(seed);
            var rows = rng.Next(1, 12);
            var cols = seed % 3 == 0 ? rows : rng.Next(1, 12);
            var e1 = RandomEdges(rng, rows);
            var e2 = RandomEdges(rng, cols);
            var mode = seed % 4;
            var v = new float[rows * cols];
            var k = new float[e1.Count * e2.Count];
            for (var i = 0; i < v.Length; i++)
            {
                v[i] = mode == 0 ? 0 : (float)((rng.NextDouble() * 2) - 1);
            }

            for (var i = 0; i < k.Length; i++)
            {
                k[i] = mode switch { 1 => 1, 2 => (float)((rng.NextDouble() * 2) - 1), _ => (float)rng.NextDouble() };
            }

            var problem = new MatchingProblem(rows, cols, v, e1, e2, k);
            var result = new int[rows];
            new FrankWolfeQapSolver(new FrankWolfeQapOptions { RandomRestarts = seed % 2, Seed = seed }).Solve(problem, result);
            var used = new HashSet<int>();
            foreach (var c in result)
            {
                if (c >= 0)
                {
                    Assert.InRange(c, 0, cols - 1);
                    Assert.True(used.Add(c), $"seed {seed}: column {c} used twice");
                }
            }

            Assert.Equal(Math.Min(rows, cols), used.Count);
        }
    }

    [Fact]
    public void FirstOrderProblemEqualsLinearAssignment()
    {
        var rng = new Random(5);
        var v = Enumerable.Range(0, 100).Select(_ => (float)rng.NextDouble()).ToArray();
        var result = new int[10];
        new FrankWolfeQapSolver().Solve(new MatchingProblem(10, 10, v), result);
        Assert.Equal(LinearAssignment.Solve(v, 10, 10, maximize: true), result);
    }

    private static double Dist(double[,] p, int i, int j) => Math.Sqrt(Math.Pow(p[i, 0] - p[j, 0], 2) + Math.Pow(p[i, 1] - p[j, 1], 2));

    private static GraphEdges RandomEdges(Random rng, int n)
    {
        var s = new List<int>();
        var t = new List<int>();
        for (var i = 0; i < n; i++)
        {
            for (var j = 0; j < n; j++)
            {
                if (i != j && rng.NextDouble() < 0.4)
                {
                    s.Add(i);
                    t.Add(j);
                }
            }
        }

        return new GraphEdges(n, s.ToArray(), t.ToArray());
    }

    private static double[,] RandomSymmetricWeights(Random rng, int n)
    {
        var a = new double[n, n];
        for (var i = 0; i < n; i++)
        {
            for (var j = i + 1; j < n; j++)
            {
                a[i, j] = a[j, i] = rng.NextDouble();
            }
        }

        return a;
    }

    /// <summary>Koopmans-Beckmann trace(A X B^T X^T) as Lawler's form on complete graphs: Ce[e,f] = A[e] B[f].</summary>
    internal static MatchingProblem KoopmansBeckmann(double[,] a, double[,] b, float[] vertex)
    {
        int n = a.GetLength(0), m = b.GetLength(0);
        var e1 = GraphEdges.Complete(n);
        var e2 = GraphEdges.Complete(m);
        var k = new float[e1.Count * e2.Count];
        for (var e = 0; e < e1.Count; e++)
        {
            for (var f = 0; f < e2.Count; f++)
            {
                k[(e * e2.Count) + f] = (float)(a[e1.Sources[e], e1.Targets[e]] * b[e2.Sources[f], e2.Targets[f]]);
            }
        }

        return new MatchingProblem(n, m, vertex, e1, e2, k);
    }
}
