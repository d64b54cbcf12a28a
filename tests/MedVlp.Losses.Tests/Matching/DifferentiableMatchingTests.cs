using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Losses.Tests.Matching;

/// <summary>
/// Finite-difference checks of the matching gradient estimators. For a loss linear in X, L = &lt;G, X&gt;, the black-box
/// gradient must equal the exact gradient of the interpolation f_lambda(theta) = (1/lambda)[h(theta) - h(theta - lambda G)],
/// h(theta) = max over matchings of the objective (Vlastelica et al. 2020), which is piecewise linear, so central
/// differences at a generic point are exact up to rounding.
/// </summary>
public sealed class DifferentiableMatchingTests
{
    [Theory]
    [InlineData(6, 6, 0.5)]
    [InlineData(7, 7, 3.0)]
    [InlineData(4, 9, 1.0)]
    public void BlackBoxFirstOrderEqualsGradientOfInterpolatedLoss(int rows, int cols, double lambda)
    {
        using var scope = NewDisposeScope();
        var rng = new Random((rows * 31) + cols);
        var c = RandomArray(rng, rows * cols);
        var g = RandomArray(rng, rows * cols);
        var grad = AutogradGradient(c, g, rows, cols, new MatchingGradientOptions { Lambda = lambda });
        double H(double[] theta) => LinearAssignment.TotalCost(To2D(theta, rows, cols), LinearAssignment.Solve(To2D(theta, rows, cols), maximize: true));
        double F(double[] theta) => (H(theta) - H(Axpy(theta, -lambda, g))) / lambda;
        var fd = CentralDifferences(F, c);
        AssertClose(fd, grad, 1e-3);
        Assert.Contains(grad, x => Math.Abs(x) > 0.1); // the perturbation changed the matching: a non-trivial check
    }

    [Fact]
    public void BlackBoxMinimizeUsesThePapersConvention()
    {
        using var scope = NewDisposeScope();
        const int n = 6;
        const double lambda = 0.7;
        var rng = new Random(2);
        var c = RandomArray(rng, n * n);
        var g = RandomArray(rng, n * n);
        var grad = AutogradGradient(c, g, n, n, new MatchingGradientOptions { Lambda = lambda, Minimize = true });

        // Paper: f_lambda(w) = (1/lambda)[h(w + lambda g) - h(w)], h(w) = min_X <w, X>; gradient -(1/lambda)[X(w) - X(w + lambda g)].
        double H(double[] w) => LinearAssignment.TotalCost(To2D(w, n, n), LinearAssignment.Solve(To2D(w, n, n)));
        double F(double[] w) => (H(Axpy(w, lambda, g)) - H(w)) / lambda;
        AssertClose(CentralDifferences(F, c), grad, 1e-3);
        Assert.Contains(grad, x => Math.Abs(x) > 0.1);
    }

    [Fact]
    public void BlackBoxSecondOrderEqualsGradientOfInterpolatedLossForVertexAndEdgeAffinities()
    {
        using var scope = NewDisposeScope();
        const int n = 5;
        const double lambda = 1.5;
        var rng = new Random(9);
        var e1 = GraphEdges.Complete(n);
        var e2 = GraphEdges.Complete(n);
        var cv = RandomArray(rng, n * n);
        var ce = RandomArray(rng, e1.Count * e2.Count).Select(x => 0.3 * x).ToArray();
        var g = RandomArray(rng, n * n);
        var solver = new BruteForceSolver();

        var v = tensor(cv.Select(x => (float)x).ToArray(), [n, n]).requires_grad_();
        var e = tensor(ce.Select(x => (float)x).ToArray(), [e1.Count, e2.Count]).requires_grad_();
        var x = DifferentiableMatching.Solve(v, e, e1, e2, solver, new MatchingGradientOptions { Lambda = lambda });
        (x * tensor(g.Select(t => (float)t).ToArray(), [n, n])).sum().backward();
        var gradV = v.grad!.data<float>().ToArray().Select(t => (double)t).ToArray();
        var gradE = e.grad!.data<float>().ToArray().Select(t => (double)t).ToArray();

        double H(double[] vv, double[] ee)
        {
            var p = new MatchingProblem(n, n, vv.Select(t => (float)t).ToArray(), e1, e2, ee.Select(t => (float)t).ToArray());
            var a = new int[n];
            solver.Solve(p, a);
            return p.Objective(a);
        }

        double FV(double[] vv) => (H(vv, ce) - H(Axpy(vv, -lambda, g), ce)) / lambda;
        double FE(double[] ee) => (H(cv, ee) - H(Axpy(cv, -lambda, g), ee)) / lambda;
        AssertClose(CentralDifferences(FV, cv), gradV, 2e-3);
        AssertClose(CentralDifferences(FE, ce), gradE, 2e-3);
        Assert.Contains(gradE, t => Math.Abs(t) > 0.1);
    }

    [Fact]
    public void ImleGradientIsTheDifferenceOfPerturbedSolutionsWithTheForwardNoise()
    {
        using var scope = NewDisposeScope();
        const int n = 7;
        const double lambda = 2.0;
        var rng = new Random(4);
        var c = RandomArray(rng, n * n);
        var g = RandomArray(rng, n * n);
        var noiseOptions = new SumOfGammaNoiseOptions { Tau = 0.5, Seed = 123 };
        using var noise = new SumOfGammaNoise(noiseOptions);
        var grad = AutogradGradient(c, g, n, n, new MatchingGradientOptions { Estimator = MatchingGradientEstimator.Imle, Lambda = lambda, Noise = noise }, out var forward);

        // The same seed gives the same eps: the forward output is argmax <c + eps, X> and the gradient is
        // X(c + eps) - X(c + eps - lambda g) = lambda * grad f_lambda(c + eps).
        using var replay = new SumOfGammaNoise(noiseOptions);
        var eps = replay.Sample(n, n).data<float>().ToArray();
        var shifted = c.Select((t, k) => (double)(float)((float)t + eps[k])).ToArray();
        var expected = LinearAssignment.Solve(To2D(shifted, n, n), maximize: true);
        Assert.Equal(expected, forward);
        double H(double[] theta) => LinearAssignment.TotalCost(To2D(theta, n, n), LinearAssignment.Solve(To2D(theta, n, n), maximize: true));
        double F(double[] theta) => H(theta) - H(Axpy(theta, -lambda, g));
        AssertClose(CentralDifferences(F, shifted), grad, 1e-3);
        Assert.Contains(grad, t => Math.Abs(t) > 0.5);
    }

    [Fact]
    public void OutputIsThePermutationMatrixAndUpstreamGradientsFlow()
    {
        using var scope = NewDisposeScope();
        random.manual_seed(0);
        var a = randn(5, 3, requires_grad: true);
        var b = randn(5, 3);
        var affinity = a.matmul(b.t());
        var x = DifferentiableMatching.Solve(affinity, LinearAssignmentSolver.Instance);
        Assert.Equal(new long[] { 5, 5 }, x.shape);
        Assert.Equal(5f, x.sum().item<float>());
        Assert.Equal(new float[] { 1, 1, 1, 1, 1 }, x.sum(dim: 0).data<float>().ToArray());
        var loss = (x * (1 - eye(5))).sum();
        loss.backward();
        Assert.NotNull(a.grad);
    }

    [Fact]
    public void SumOfGammaNoiseHasTheAnalyticMeanAndVarianceAndIsSeeded()
    {
        foreach (var (k, tau, s) in new[] { (1.0, 1.0, 10), (5.0, 0.5, 10), (2.0, 2.0, 3) })
        {
            using var noise = new SumOfGammaNoise(new SumOfGammaNoiseOptions { K = k, Tau = tau, Terms = s, Seed = 7 });
            using var sample = noise.Sample(400_000);
            var values = sample.data<float>().ToArray().Select(x => (double)x).ToArray();

            // eps = (tau/k)(sum_i Gamma(1/k, k/i) - log s): E = (tau/k)(H_s - log s), Var = (tau^2/k) sum_i 1/i^2.
            var harmonic = Enumerable.Range(1, s).Sum(i => 1.0 / i);
            var squares = Enumerable.Range(1, s).Sum(i => 1.0 / (i * i));
            var mean = values.Average();
            var variance = values.Select(x => (x - mean) * (x - mean)).Average();
            var expectedMean = tau / k * (harmonic - Math.Log(s));
            var expectedVariance = tau * tau / k * squares;
            Assert.True(Math.Abs(mean - expectedMean) < 0.01 * tau + (4 * Math.Sqrt(expectedVariance / values.Length)), $"k={k}: mean {mean} vs {expectedMean}");
            Assert.True(Math.Abs((variance / expectedVariance) - 1) < 0.02, $"k={k}: variance {variance} vs {expectedVariance}");
        }

        using var n1 = new SumOfGammaNoise(new SumOfGammaNoiseOptions { Seed = 3 });
        using var n2 = new SumOfGammaNoise(new SumOfGammaNoiseOptions { Seed = 3 });
        using var n3 = new SumOfGammaNoise(new SumOfGammaNoiseOptions { Seed = 4 });
        using var a = n1.Sample(10);
        using var b = n2.Sample(10);
        using var c = n3.Sample(10);
        Assert.Equal(a.data<float>().ToArray(), b.data<float>().ToArray());
        Assert.NotEqual(a.data<float>().ToArray(), c.data<float>().ToArray());
    }

    private static double[] AutogradGradient(double[] c, double[] g, int rows, int cols, MatchingGradientOptions options)
        => AutogradGradient(c, g, rows, cols, options, out _);

    private static double[] AutogradGradient(double[] c, double[] g, int rows, int cols, MatchingGradientOptions options, out int[] forward)
    {
        var theta = tensor(c.Select(x => (float)x).ToArray(), [rows, cols]).requires_grad_();
        var x = DifferentiableMatching.Solve(theta, LinearAssignmentSolver.Instance, options);
        var xs = x.data<float>().ToArray();
        forward = Enumerable.Range(0, rows).Select(i => Array.FindIndex(xs, i * cols, cols, v => v == 1) is var j && j >= 0 ? j - (i * cols) : -1).ToArray();
        (x * tensor(g.Select(t => (float)t).ToArray(), [rows, cols])).sum().backward();
        return theta.grad!.data<float>().ToArray().Select(t => (double)t).ToArray();
    }

    private static double[] CentralDifferences(Func<double[], double> f, double[] x, double h = 1e-4)
    {
        var grad = new double[x.Length];
        for (var k = 0; k < x.Length; k++)
        {
            var plus = (double[])x.Clone();
            var minus = (double[])x.Clone();
            plus[k] += h;
            minus[k] -= h;
            grad[k] = (f(plus) - f(minus)) / (2 * h);
        }

        return grad;
    }

    private static void AssertClose(double[] expected, double[] actual, double tolerance)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var k = 0; k < expected.Length; k++)
        {
            Assert.True(Math.Abs(expected[k] - actual[k]) <= tolerance, $"entry {k}: finite differences {expected[k]} vs autograd {actual[k]}");
        }
    }

    private static double[] RandomArray(Random rng, int n) => Enumerable.Range(0, n).Select(_ => (rng.NextDouble() * 2) - 1).ToArray();

    private static double[] Axpy(double[] x, double a, double[] y) => x.Select((v, k) => v + (a * y[k])).ToArray();

    private static double[,] To2D(double[] x, int rows, int cols)
    {
        var m = new double[rows, cols];
        for (var i = 0; i < rows; i++)
        {
            for (var j = 0; j < cols; j++)
            {
                m[i, j] = x[(i * cols) + j];
            }
        }

        return m;
    }

    /// <summary>An exact second-order solver by enumeration (rows &lt;= cols, tiny problems): shows the estimators work with any IMatchingSolver.</summary>
    private sealed class BruteForceSolver : IMatchingSolver
    {
        public bool UsesEdges => true;

        public void Solve(MatchingProblem problem, Span<int> colForRow, CancellationToken cancellationToken = default)
        {
            var best = new int[problem.Rows];
            var bestValue = double.NegativeInfinity;
            var current = new int[problem.Rows];
            var used = new bool[problem.Cols];
            void Walk(int i)
            {
                if (i == problem.Rows)
                {
                    var value = problem.Objective(current);
                    if (value > bestValue)
                    {
                        bestValue = value;
                        current.CopyTo(best, 0);
                    }

                    return;
                }

                for (var j = 0; j < problem.Cols; j++)
                {
                    if (!used[j])
                    {
                        used[j] = true;
                        current[i] = j;
                        Walk(i + 1);
                        used[j] = false;
                    }
                }
            }

            Walk(0);
            best.CopyTo(colForRow);
        }
    }
}
