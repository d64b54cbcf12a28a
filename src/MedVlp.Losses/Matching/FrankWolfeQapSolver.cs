namespace MedVlp.Losses;

/// <summary>Options of <see cref="FrankWolfeQapSolver"/>.</summary>
public sealed class FrankWolfeQapOptions
{
    /// <summary>Frank-Wolfe iterations per start (scipy's FAQ default: 30).</summary>
    public int MaxIterations { get; set; } = 30;

    /// <summary>Stop when a step moves X by less than this (Frobenius norm / sqrt(rows); scipy's default 0.03).</summary>
    public double Tolerance { get; set; } = 0.03;

    /// <summary>Extra starts from random points (half barycentre, half a random permutation); the best objective wins. 0 = the barycentre only.</summary>
    public int RandomRestarts { get; set; }

    /// <summary>Seed of the random starts.</summary>
    public int Seed { get; set; }
}

/// <summary>
/// Second-order matching: Lawler's quadratic assignment (<see cref="MatchingProblem"/>) by the Frank-Wolfe
/// relaxation of FAQ (Vogelstein et al. 2015, "Fast approximate quadratic programming for graph matching"):
/// relax X to the polytope of doubly stochastic matrices (rows sum to 1, columns to at most 1 when rectangular),
/// start at the barycentre, and repeat: gradient G of the objective at X; the best vertex Q = argmax &lt;G, Q&gt; by
/// <see cref="LinearAssignment"/>; exact line search of the quadratic objective on the segment X -&gt; Q. Finally X is
/// projected to the nearest permutation by linear assignment; the better of that and the last vertex is returned.
/// </summary>
/// <remarks>
/// The result is always a (partial) permutation: every row gets a distinct column (rows &lt;= cols). FAQ is a local
/// method: on hard instances it may return a suboptimal matching; <see cref="FrankWolfeQapOptions.RandomRestarts"/>
/// trades time for quality. Cost per iteration: O(|E1| |E2|) for the edge term plus one linear assignment.
/// Problems with more rows than columns are solved on the transposed problem.
/// </remarks>
public sealed class FrankWolfeQapSolver : IMatchingSolver
{
    private readonly FrankWolfeQapOptions options;

    /// <summary>Creates the solver.</summary>
    /// <param name="options">Options; null for the defaults.</param>
    public FrankWolfeQapSolver(FrankWolfeQapOptions? options = null)
    {
        this.options = options ?? new FrankWolfeQapOptions();
        ArgumentOutOfRangeException.ThrowIfNegative(this.options.MaxIterations);
        ArgumentOutOfRangeException.ThrowIfNegative(this.options.RandomRestarts);
    }

    /// <inheritdoc />
    public bool UsesEdges => true;

    /// <inheritdoc />
    public void Solve(MatchingProblem problem, Span<int> colForRow, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(problem);
        if (colForRow.Length < problem.Rows)
        {
            throw new ArgumentException($"The result span has {colForRow.Length} entries; it needs {problem.Rows}.", nameof(colForRow));
        }

        if (!problem.IsQuadratic || problem.Rows == 0 || problem.Cols == 0)
        {
            LinearAssignmentSolver.Instance.Solve(problem, colForRow, cancellationToken);
            return;
        }

        if (problem.Rows > problem.Cols)
        {
            SolveTransposed(problem, colForRow, cancellationToken);
            return;
        }

        var state = new State(problem);
        var rng = new Random(options.Seed);
        var best = new int[problem.Rows];
        var bestValue = double.NegativeInfinity;
        var candidate = new int[problem.Rows];
        for (var start = 0; start <= options.RandomRestarts; start++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            state.Start(start == 0 ? null : rng);
            var value = Run(state, problem, candidate, cancellationToken);
            if (value > bestValue)
            {
                bestValue = value;
                candidate.CopyTo(best, 0);
            }
        }

        best.CopyTo(colForRow);
    }

    private double Run(State s, MatchingProblem problem, int[] result, CancellationToken cancellationToken)
    {
        int rows = problem.Rows, cols = problem.Cols;
        var vertex = new int[rows];
        for (var iteration = 0; iteration < options.MaxIterations; iteration++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            s.Gradient(s.X, s.G);
            LinearAssignment.Solve(s.G, rows, cols, vertex, maximize: true, cancellationToken);

            // Direction D = Q - X; along it f(X + aD) = f(X) + a <G, D> + a^2 q(D).
            Array.Copy(s.X, s.D, s.X.Length);
            for (var k = 0; k < s.D.Length; k++)
            {
                s.D[k] = -s.D[k];
            }

            for (var i = 0; i < rows; i++)
            {
                s.D[(i * cols) + vertex[i]] += 1;
            }

            var slope = Dot(s.G, s.D);
            var curvature = s.Quadratic(s.D);
            double step;
            if (curvature < 0)
            {
                step = Math.Clamp(-slope / (2 * curvature), 0, 1);
            }
            else
            {
                step = slope + curvature > 0 ? 1 : 0;
            }

            if (step <= 0 || slope <= 0)
            {
                break;
            }

            var moved = 0.0;
            for (var k = 0; k < s.X.Length; k++)
            {
                var delta = step * s.D[k];
                s.X[k] += delta;
                moved += delta * delta;
            }

            if (Math.Sqrt(moved / rows) < options.Tolerance)
            {
                break;
            }
        }

        // Project onto the permutations; keep the better of the projection and the last Frank-Wolfe vertex.
        LinearAssignment.Solve(s.X, rows, cols, result, maximize: true, cancellationToken);
        var value = problem.Objective(result);
        LinearAssignment.Solve(s.Gradient(s.X, s.G), rows, cols, vertex, maximize: true, cancellationToken);
        var vertexValue = problem.Objective(vertex);
        if (vertexValue > value)
        {
            vertex.CopyTo(result, 0);
            return vertexValue;
        }

        return value;
    }

    private void SolveTransposed(MatchingProblem problem, Span<int> colForRow, CancellationToken cancellationToken)
    {
        int rows = problem.Rows, cols = problem.Cols;
        var vt = new float[rows * cols];
        var v = problem.VertexAffinity;
        for (var i = 0; i < rows; i++)
        {
            for (var j = 0; j < cols; j++)
            {
                vt[(j * rows) + i] = v[(i * cols) + j];
            }
        }

        var e1 = problem.Edges1!;
        var e2 = problem.Edges2!;
        var et = new float[e1.Count * e2.Count];
        var ea = problem.EdgeAffinity;
        for (var e = 0; e < e1.Count; e++)
        {
            for (var f = 0; f < e2.Count; f++)
            {
                et[(f * e1.Count) + e] = ea[(e * e2.Count) + f];
            }
        }

        var transposed = new MatchingProblem(cols, rows, vt, e2, e1, et);
        var rowForCol = new int[cols];
        Solve(transposed, rowForCol, cancellationToken);
        colForRow[..rows].Fill(-1);
        for (var j = 0; j < cols; j++)
        {
            colForRow[rowForCol[j]] = j;
        }
    }

    private static double Dot(double[] a, double[] b)
    {
        var sum = 0.0;
        for (var k = 0; k < a.Length; k++)
        {
            sum += a[k] * b[k];
        }

        return sum;
    }

    /// <summary>The relaxed iterate and the problem in flat index form.</summary>
    private sealed class State
    {
        private readonly int rows;
        private readonly int cols;
        private readonly float[] vertexAffinity;
        private readonly float[] edgeAffinity;
        private readonly int[] src1;
        private readonly int[] dst1;
        private readonly int[] src2;
        private readonly int[] dst2;

        public State(MatchingProblem p)
        {
            rows = p.Rows;
            cols = p.Cols;
            vertexAffinity = p.VertexAffinity.ToArray();
            edgeAffinity = p.EdgeAffinity.ToArray();

            // Flat offsets: row part for graph 1 (i * cols), column part for graph 2.
            src1 = p.Edges1!.Sources.ToArray();
            dst1 = p.Edges1.Targets.ToArray();
            for (var e = 0; e < src1.Length; e++)
            {
                src1[e] *= cols;
                dst1[e] *= cols;
            }

            src2 = p.Edges2!.Sources.ToArray();
            dst2 = p.Edges2.Targets.ToArray();
            X = new double[rows * cols];
            G = new double[rows * cols];
            D = new double[rows * cols];
        }

        public double[] X { get; }

        public double[] G { get; }

        public double[] D { get; }

        public void Start(Random? rng)
        {
            Array.Fill(X, 1.0 / cols);
            if (rng is null)
            {
                return;
            }

            // Half barycentre, half a random injective assignment: inside the polytope.
            var perm = Enumerable.Range(0, cols).ToArray();
            rng.Shuffle(perm);
            for (var k = 0; k < X.Length; k++)
            {
                X[k] *= 0.5;
            }

            for (var i = 0; i < rows; i++)
            {
                X[(i * cols) + perm[i]] += 0.5;
            }
        }

        /// <summary>G = Cv + sum_{e,f} Ce[e,f] (X[dst] at [src] + X[src] at [dst]).</summary>
        public double[] Gradient(double[] x, double[] g)
        {
            for (var k = 0; k < g.Length; k++)
            {
                g[k] = vertexAffinity[k];
            }

            var nf = src2.Length;
            for (var e = 0; e < src1.Length; e++)
            {
                var s1 = src1[e];
                var d1 = dst1[e];
                var row = edgeAffinity.AsSpan(e * nf, nf);
                for (var f = 0; f < nf; f++)
                {
                    var k = (double)row[f];
                    g[s1 + src2[f]] += k * x[d1 + dst2[f]];
                    g[d1 + dst2[f]] += k * x[s1 + src2[f]];
                }
            }

            return g;
        }

        /// <summary>q(D) = sum_{e,f} Ce[e,f] D[src] D[dst].</summary>
        public double Quadratic(double[] d)
        {
            var nf = src2.Length;
            var total = 0.0;
            for (var e = 0; e < src1.Length; e++)
            {
                var s1 = src1[e];
                var d1 = dst1[e];
                var row = edgeAffinity.AsSpan(e * nf, nf);
                var sum = 0.0;
                for (var f = 0; f < nf; f++)
                {
                    sum += row[f] * d[s1 + src2[f]] * d[d1 + dst2[f]];
                }

                total += sum;
            }

            return total;
        }
    }
}
