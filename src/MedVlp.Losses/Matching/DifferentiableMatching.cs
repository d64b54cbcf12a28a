using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Losses;

/// <summary>How the gradient of a loss is carried back through a combinatorial matching solver.</summary>
public enum MatchingGradientEstimator
{
    /// <summary>
    /// Vlastelica et al. 2020 (black-box differentiation of combinatorial solvers): the gradient of the piecewise-linear
    /// interpolation f_lambda; one extra solve with the affinities moved by lambda * dL/dX.
    /// </summary>
    BlackBox,

    /// <summary>
    /// Niepert et al. 2021 (implicit maximum-likelihood estimation): the forward pass solves the affinities perturbed by
    /// Sum-of-Gamma noise; the gradient is X(theta + eps) - X(theta + eps - lambda dL/dX).
    /// </summary>
    Imle,
}

/// <summary>Options of <see cref="DifferentiableMatching"/>.</summary>
public sealed class MatchingGradientOptions
{
    /// <summary>The estimator.</summary>
    public MatchingGradientEstimator Estimator { get; set; } = MatchingGradientEstimator.BlackBox;

    /// <summary>Interpolation strength lambda (LVM-Med and Vlastelica et al. use about 80).</summary>
    public double Lambda { get; set; } = 80;

    /// <summary>I-MLE only: divide the gradient by lambda as the black-box estimator does (off: Niepert et al.'s form).</summary>
    public bool ImleDivideByLambda { get; set; }

    /// <summary>I-MLE only: the perturbation source (owned by the caller). Required for <see cref="MatchingGradientEstimator.Imle"/>.</summary>
    public SumOfGammaNoise? Noise { get; set; }

    /// <summary>
    /// Treat the input tensors as costs to minimise instead of affinities to maximise (the solver then sees their
    /// negation, and the gradient is returned for the costs).
    /// </summary>
    public bool Minimize { get; set; }
}

/// <summary>
/// A combinatorial matching solver as a TorchSharp autograd function: the forward pass returns the solver's 0/1 matching
/// matrix X (rows x cols, float, no gradient of its own), the backward pass estimates dL/d(affinities) from dL/dX by
/// <see cref="MatchingGradientEstimator.BlackBox"/> or <see cref="MatchingGradientEstimator.Imle"/>. Works with any
/// <see cref="IMatchingSolver"/>.
/// </summary>
/// <remarks>
/// <para>Sign convention (maximisation, theta = affinities): the black-box estimator solves X' = X(theta - lambda dL/dX)
/// and returns dL/dtheta = (X - X') / lambda, the exact gradient of f_lambda(theta) = (1/lambda)[h(theta) - h(theta -
/// lambda dL/dX)] with h(theta) = max_X &lt;theta, X&gt; when L is linear in X. (In the minimisation convention of the
/// paper, -(1/lambda)[X(c) - X(c + lambda dL/dX)].)</para>
/// <para>Second order: the edge affinities receive (Y - Y') / lambda, Y[e,f] = X[src e, src f] X[dst e, dst f] the
/// edge-matching indicator of each solution (Rolinek et al. 2020); I-MLE perturbs the vertex affinities only.</para>
/// </remarks>
public static class DifferentiableMatching
{
    /// <summary>First-order matching of a vertex affinity matrix (rows x cols).</summary>
    /// <param name="vertexAffinity">Affinities (rows x cols), any float dtype and device; receives the gradient.</param>
    /// <param name="solver">The solver.</param>
    /// <param name="options">Estimator options; null for the black-box default.</param>
    /// <returns>The 0/1 matching matrix X (rows x cols), dtype and device of the input.</returns>
    public static Tensor Solve(Tensor vertexAffinity, IMatchingSolver solver, MatchingGradientOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(vertexAffinity);
        ArgumentNullException.ThrowIfNull(solver);
        var call = MatchingCall.Create(vertexAffinity, null, null, solver, options);
        return MatchingFunction.apply(vertexAffinity, call);
    }

    /// <summary>Second-order matching with vertex and edge affinities.</summary>
    /// <param name="vertexAffinity">Vertex affinities (rows x cols); receives a gradient.</param>
    /// <param name="edgeAffinity">Edge affinities (|E1| x |E2|); receives a gradient.</param>
    /// <param name="edges1">Edges of graph 1 (over the rows).</param>
    /// <param name="edges2">Edges of graph 2 (over the columns).</param>
    /// <param name="solver">The solver (a first-order solver ignores the edges; their gradient is then zero only if the matching does not change).</param>
    /// <param name="options">Estimator options; null for the black-box default.</param>
    /// <returns>The 0/1 matching matrix X (rows x cols), dtype and device of the vertex affinities.</returns>
    public static Tensor Solve(Tensor vertexAffinity, Tensor edgeAffinity, GraphEdges edges1, GraphEdges edges2, IMatchingSolver solver, MatchingGradientOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(vertexAffinity);
        ArgumentNullException.ThrowIfNull(edgeAffinity);
        ArgumentNullException.ThrowIfNull(edges1);
        ArgumentNullException.ThrowIfNull(edges2);
        ArgumentNullException.ThrowIfNull(solver);
        var call = MatchingCall.Create(vertexAffinity, edgeAffinity, (edges1, edges2), solver, options);
        return MatchingFunction.apply(vertexAffinity, edgeAffinity, call);
    }

    /// <summary>The 0/1 matrix of an assignment (rows x cols; rows marked -1 stay zero).</summary>
    /// <param name="colForRow">For each row its column, or -1.</param>
    /// <param name="cols">Number of columns.</param>
    /// <returns>A float32 CPU tensor.</returns>
    public static Tensor ToMatrix(ReadOnlySpan<int> colForRow, int cols)
    {
        var data = new float[colForRow.Length * cols];
        for (var i = 0; i < colForRow.Length; i++)
        {
            if (colForRow[i] >= 0)
            {
                data[(i * cols) + colForRow[i]] = 1;
            }
        }

        return tensor(data, [colForRow.Length, cols]);
    }

    internal static float[] ToFloats(Tensor t)
    {
        using var scope = NewDisposeScope();
        return t.detach().to(ScalarType.Float32).cpu().contiguous().data<float>().ToArray();
    }
}

/// <summary>Everything one application of <see cref="MatchingFunction"/> needs besides the tensors.</summary>
internal sealed class MatchingCall
{
    private MatchingCall(IMatchingSolver solver, MatchingGradientOptions options, int rows, int cols, GraphEdges? edges1, GraphEdges? edges2)
    {
        Solver = solver;
        Options = options;
        Rows = rows;
        Cols = cols;
        Edges1 = edges1;
        Edges2 = edges2;
    }

    public IMatchingSolver Solver { get; }

    public MatchingGradientOptions Options { get; }

    public int Rows { get; }

    public int Cols { get; }

    public GraphEdges? Edges1 { get; }

    public GraphEdges? Edges2 { get; }

    /// <summary>Affinities in the maximisation convention (theta), without noise.</summary>
    public float[] Theta { get; set; } = [];

    /// <summary>Edge affinities in the maximisation convention, or empty.</summary>
    public float[] EdgeTheta { get; set; } = [];

    /// <summary>I-MLE's noise (rows x cols), or empty.</summary>
    public float[] Noise { get; set; } = [];

    /// <summary>The forward solution.</summary>
    public int[] Assignment { get; set; } = [];

    public double Sign => Options.Minimize ? -1 : 1;

    public static MatchingCall Create(Tensor vertex, Tensor? edge, (GraphEdges E1, GraphEdges E2)? edges, IMatchingSolver solver, MatchingGradientOptions? options)
    {
        options ??= new MatchingGradientOptions();
        if (!(options.Lambda > 0) || double.IsInfinity(options.Lambda))
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.Lambda, "Lambda must be positive and finite.");
        }

        if (options.Estimator == MatchingGradientEstimator.Imle && options.Noise is null)
        {
            throw new ArgumentException("The I-MLE estimator needs MatchingGradientOptions.Noise (a SumOfGammaNoise).", nameof(options));
        }

        Check.Matrix(vertex, "vertexAffinity");
        var rows = checked((int)vertex.shape[0]);
        var cols = checked((int)vertex.shape[1]);
        if (edge is not null && edges is { } ee)
        {
            if (ee.E1.NodeCount != rows || ee.E2.NodeCount != cols)
            {
                throw new ArgumentException($"The graphs have {ee.E1.NodeCount} and {ee.E2.NodeCount} nodes; the vertex affinity is {rows} x {cols}.", nameof(edges));
            }

            if (edge.dim() != 2 || edge.shape[0] != ee.E1.Count || edge.shape[1] != ee.E2.Count)
            {
                throw new ArgumentException($"edgeAffinity must be {ee.E1.Count} x {ee.E2.Count} (|E1| x |E2|) but has shape [{string.Join(", ", edge.shape)}].", nameof(edge));
            }
        }

        return new MatchingCall(solver, options, rows, cols, edges?.E1, edges?.E2);
    }

    /// <summary>Solves max &lt;theta + shift, X&gt; (+ the edge term) and returns the assignment.</summary>
    public int[] SolveShifted(ReadOnlySpan<float> shift, double shiftScale)
    {
        var scores = new float[Theta.Length];
        for (var k = 0; k < scores.Length; k++)
        {
            scores[k] = (float)(Theta[k] + (Noise.Length > 0 ? Noise[k] : 0) + (shift.IsEmpty ? 0 : shiftScale * shift[k]));
        }

        var problem = Edges1 is null
            ? new MatchingProblem(Rows, Cols, scores)
            : new MatchingProblem(Rows, Cols, scores, Edges1, Edges2, EdgeTheta);
        var result = new int[Rows];
        Solver.Solve(problem, result);
        return result;
    }

    /// <summary>Y[e,f] = 1 when edge e of graph 1 maps onto edge f of graph 2.</summary>
    public float[] EdgeIndicator(int[] colForRow)
    {
        var e1 = Edges1!;
        var e2 = Edges2!;
        var y = new float[e1.Count * e2.Count];
        for (var e = 0; e < e1.Count; e++)
        {
            var a = colForRow[e1.Sources[e]];
            var b = colForRow[e1.Targets[e]];
            if (a < 0 || b < 0)
            {
                continue;
            }

            for (var f = 0; f < e2.Count; f++)
            {
                if (e2.Sources[f] == a && e2.Targets[f] == b)
                {
                    y[(e * e2.Count) + f] = 1;
                }
            }
        }

        return y;
    }
}

/// <summary>The autograd function behind <see cref="DifferentiableMatching"/>.</summary>
internal sealed class MatchingFunction : autograd.SingleTensorFunction<MatchingFunction>
{
    public override string Name => nameof(MatchingFunction);

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        using var scope = NewDisposeScope();
        var vertex = (Tensor)vars[0];
        var hasEdges = vars.Length == 3;
        var call = (MatchingCall)vars[^1];
        var sign = (float)call.Sign;
        call.Theta = DifferentiableMatching.ToFloats(vertex);
        for (var k = 0; k < call.Theta.Length; k++)
        {
            call.Theta[k] *= sign;
        }

        if (hasEdges)
        {
            call.EdgeTheta = DifferentiableMatching.ToFloats((Tensor)vars[1]);
            for (var k = 0; k < call.EdgeTheta.Length; k++)
            {
                call.EdgeTheta[k] *= sign;
            }
        }

        if (call.Options.Estimator == MatchingGradientEstimator.Imle)
        {
            using var eps = call.Options.Noise!.Sample(call.Rows, call.Cols);
            call.Noise = eps.data<float>().ToArray();
        }

        call.Assignment = call.SolveShifted(default, 0);
        ctx.save_data("call", call);
        ctx.save_data("edges", hasEdges);
        return scope.MoveToOuter(DifferentiableMatching.ToMatrix(call.Assignment, call.Cols).to(vertex.dtype, vertex.device));
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output)
    {
        using var scope = NewDisposeScope();
        var call = (MatchingCall)ctx.get_data("call");
        var hasEdges = (bool)ctx.get_data("edges");
        var g = DifferentiableMatching.ToFloats(grad_output);
        var lambda = call.Options.Lambda;

        // Maximisation convention: X' = X(theta [+ eps] - lambda g); dL/dtheta = (X - X') / lambda (I-MLE: X - X').
        var perturbed = call.SolveShifted(g, -lambda);
        var scale = call.Options.Estimator == MatchingGradientEstimator.BlackBox || call.Options.ImleDivideByLambda ? 1.0 / lambda : 1.0;
        scale *= call.Sign;

        var gradVertex = new float[call.Rows * call.Cols];
        for (var i = 0; i < call.Rows; i++)
        {
            if (call.Assignment[i] >= 0)
            {
                gradVertex[(i * call.Cols) + call.Assignment[i]] += (float)scale;
            }

            if (perturbed[i] >= 0)
            {
                gradVertex[(i * call.Cols) + perturbed[i]] -= (float)scale;
            }
        }

        var result = new List<Tensor> { scope.MoveToOuter(tensor(gradVertex, [call.Rows, call.Cols]).to(grad_output.dtype, grad_output.device)) };
        if (hasEdges)
        {
            var y = call.EdgeIndicator(call.Assignment);
            var yp = call.EdgeIndicator(perturbed);
            for (var k = 0; k < y.Length; k++)
            {
                y[k] = (float)(scale * (y[k] - yp[k]));
            }

            result.Add(scope.MoveToOuter(tensor(y, [call.Edges1!.Count, call.Edges2!.Count]).to(grad_output.dtype, grad_output.device)));
        }

        result.Add(null!);
        return result;
    }
}
