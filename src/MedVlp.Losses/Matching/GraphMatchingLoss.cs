using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MedVlp.Losses;

/// <summary>Which matching problem <see cref="GraphMatchingLoss"/> solves.</summary>
public enum GraphMatchingOrder
{
    /// <summary>Vertex affinities only: a linear assignment.</summary>
    First,

    /// <summary>Vertex and edge affinities: Lawler's quadratic assignment (LVM-Med's second-order matching).</summary>
    Second,
}

/// <summary>Input of <see cref="GraphMatchingLoss"/>: the embeddings of two augmented views of the same N images.</summary>
/// <param name="View1">Embeddings of view 1 (N x D); row i and row i of <paramref name="View2"/> are the same image.</param>
/// <param name="View2">Embeddings of view 2 (N x D).</param>
/// <param name="LocalFeatures1">Optional local (feature-map) features of view 1 (N x P x D'), for the local vertex affinity.</param>
/// <param name="LocalFeatures2">Optional local features of view 2 (N x Q x D').</param>
public sealed record GraphMatchingInput(Tensor View1, Tensor View2, Tensor? LocalFeatures1 = null, Tensor? LocalFeatures2 = null);

/// <summary>Options of <see cref="GraphMatchingLoss"/>.</summary>
public sealed class GraphMatchingLossOptions
{
    /// <summary>First- or second-order matching.</summary>
    public GraphMatchingOrder Order { get; set; } = GraphMatchingOrder.Second;

    /// <summary>Neighbours per node of each view's k-NN graph (cosine similarity of the embeddings).</summary>
    public int Neighbors { get; set; } = 5;

    /// <summary>The solver; null for <see cref="LinearAssignmentSolver"/> (first order) or <see cref="FrankWolfeQapSolver"/> (second order).</summary>
    public IMatchingSolver? Solver { get; set; }

    /// <summary>The gradient estimator through the solver.</summary>
    public MatchingGradientEstimator Estimator { get; set; } = MatchingGradientEstimator.BlackBox;

    /// <summary>Interpolation strength lambda of the estimator (LVM-Med: about 80).</summary>
    public double Lambda { get; set; } = 80;

    /// <summary>I-MLE's Sum-of-Gamma noise (seeded); used when <see cref="Estimator"/> is <see cref="MatchingGradientEstimator.Imle"/>.</summary>
    public SumOfGammaNoiseOptions Noise { get; set; } = new();

    /// <summary>I-MLE only: divide its gradient by lambda.</summary>
    public bool ImleDivideByLambda { get; set; }

    /// <summary>Weight of the local (feature-map) vertex affinity added to the global cosine affinity, when local features are given.</summary>
    public double LocalWeight { get; set; } = 0.5;

    /// <summary>
    /// Scale of the edge affinities (cosine similarity of the edge features h_i - h_j). A matching maps at most N k edge
    /// pairs against N vertex pairs, so about 1/k balances the two terms.
    /// </summary>
    public double EdgeWeight { get; set; } = 0.2;

    /// <summary>Embedding width D for the optional message-passing refinement; 0 turns it off.</summary>
    public int MessagePassingDim { get; set; }

    /// <summary>Divide the Hamming distance by N (the loss is then in [0, 2]).</summary>
    public bool NormalizeHamming { get; set; } = true;

    /// <summary>
    /// Weight of an optional soft first-order term added to the Hamming distance (term <c>contrastive</c>): the
    /// symmetric InfoNCE of the vertex affinities divided by <see cref="ContrastiveTemperature"/>, image i of view 2
    /// being the positive of image i of view 1 (the softmax relaxation of the first-order matching). Not part of the
    /// paper's description of its loss (a MedVlp option); 0 (the default) leaves the Hamming distance alone.
    /// </summary>
    public double ContrastiveWeight { get; set; }

    /// <summary>Temperature of the <see cref="ContrastiveWeight"/> term (default 0.1).</summary>
    public double ContrastiveTemperature { get; set; } = 0.1;
}

/// <summary>
/// LVM-Med's graph-matching objective (Nguyen et al. 2023, arXiv 2306.11925): each view's batch forms a k-nearest-
/// neighbour graph on its embeddings (optionally refined by one message-passing step); vertex affinity = cosine
/// similarity of the node embeddings (plus a weighted local feature-map similarity), edge affinity = cosine similarity
/// of the edge features; a combinatorial solver matches view 1 to view 2 (first order: linear assignment, second
/// order: quadratic assignment), differentiated by the black-box or I-MLE estimator; the loss is the Hamming distance
/// of the matching to the identity (image i of view 1 is image i of view 2). Term: <c>hamming</c>; with
/// <see cref="GraphMatchingLossOptions.ContrastiveWeight"/> above 0, also <c>contrastive</c> (the total is
/// <c>hamming + weight * contrastive</c>).
/// </summary>
/// <remarks>
/// The released LVM-Med details of the affinities are not public in full (see methods.md, tagged unverified); every
/// choice here is an option. The k-NN graphs are built from detached similarities (graph structure is discrete).
/// </remarks>
public sealed class GraphMatchingLoss : VlpLoss<GraphMatchingInput>
{
    private readonly GraphMatchingLossOptions options;
    private readonly IMatchingSolver solver;
    private readonly SumOfGammaNoise? noise;
    private readonly GraphMessagePassing? messagePassing;

    /// <summary>Creates the loss.</summary>
    /// <param name="options">Options; null for the defaults (second order, black-box, lambda 80, k = 5).</param>
    public GraphMatchingLoss(GraphMatchingLossOptions? options = null)
        : base(nameof(GraphMatchingLoss))
    {
        this.options = options ?? new GraphMatchingLossOptions();
        if (this.options.Neighbors < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(options), this.options.Neighbors, "Neighbors must be at least 1.");
        }

        if (!(this.options.Lambda > 0))
        {
            throw new ArgumentOutOfRangeException(nameof(options), this.options.Lambda, "Lambda must be positive.");
        }

        if (!(this.options.ContrastiveWeight >= 0) || !double.IsFinite(this.options.ContrastiveWeight))
        {
            throw new ArgumentOutOfRangeException(nameof(options), this.options.ContrastiveWeight, "ContrastiveWeight must be finite and at least 0.");
        }

        if (!(this.options.ContrastiveTemperature > 0) || !double.IsFinite(this.options.ContrastiveTemperature))
        {
            throw new ArgumentOutOfRangeException(nameof(options), this.options.ContrastiveTemperature, "ContrastiveTemperature must be positive and finite.");
        }

        solver = this.options.Solver ?? (this.options.Order == GraphMatchingOrder.First ? LinearAssignmentSolver.Instance : new FrankWolfeQapSolver());
        if (this.options.Estimator == MatchingGradientEstimator.Imle)
        {
            noise = new SumOfGammaNoise(this.options.Noise);
        }

        if (this.options.MessagePassingDim > 0)
        {
            messagePassing = new GraphMessagePassing(this.options.MessagePassingDim);
            register_module("message_passing", messagePassing);
        }
    }

    /// <summary>The solver in use.</summary>
    public IMatchingSolver Solver => solver;

    /// <summary>
    /// The matching the solver finds for the input, without noise and without gradient: for each row of view 1, its
    /// row in view 2. The fraction of i with result[i] == i is the matching accuracy.
    /// </summary>
    /// <param name="input">The two views.</param>
    /// <returns>The assignment.</returns>
    public int[] Match(GraphMatchingInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var graph = Build(input);
        var v = DifferentiableMatching.ToFloats(graph.Vertex);
        var n = (int)graph.Vertex.shape[0];
        var problem = graph.Edge is null
            ? new MatchingProblem(n, n, v)
            : new MatchingProblem(n, n, v, graph.Edges1, graph.Edges2, DifferentiableMatching.ToFloats(graph.Edge));
        var result = new int[n];
        solver.Solve(problem, result);
        return result;
    }

    /// <inheritdoc />
    protected override LossOutput ComputeLoss(GraphMatchingInput input)
    {
        var graph = Build(input);
        var gradient = new MatchingGradientOptions
        {
            Estimator = options.Estimator,
            Lambda = options.Lambda,
            Noise = noise,
            ImleDivideByLambda = options.ImleDivideByLambda,
        };
        var x = graph.Edge is null
            ? DifferentiableMatching.Solve(graph.Vertex, solver, gradient)
            : DifferentiableMatching.Solve(graph.Vertex, graph.Edge, graph.Edges1!, graph.Edges2!, solver, gradient);
        var n = x.shape[0];
        var identity = eye(n, dtype: x.dtype, device: x.device);
        var hamming = ((x * (1 - identity)) + ((1 - x) * identity)).sum();
        if (options.NormalizeHamming)
        {
            hamming = hamming / n;
        }

        if (options.ContrastiveWeight == 0)
        {
            return new LossOutput(hamming, [new("hamming", hamming)]);
        }

        var logits = graph.Vertex / options.ContrastiveTemperature;
        var targets = arange(n, dtype: ScalarType.Int64, device: logits.device);
        var contrastive = (F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets)) / 2;
        return new LossOutput(hamming + (options.ContrastiveWeight * contrastive), [new("hamming", hamming), new("contrastive", contrastive)]);
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            noise?.Dispose();
        }

        base.Dispose(disposing);
    }

    private Graphs Build(GraphMatchingInput input)
    {
        Check.Matrix(input.View1, nameof(input.View1));
        Check.Matrix(input.View2, nameof(input.View2));
        Check.SameShape(input.View1, nameof(input.View1), input.View2, nameof(input.View2));
        var n = checked((int)input.View1.shape[0]);
        if (n < 2)
        {
            throw new ArgumentException($"Graph matching needs at least 2 samples per view; got {n}.", nameof(input));
        }

        var k = Math.Min(options.Neighbors, n - 1);
        var z1 = F.normalize(input.View1, dim: -1);
        var z2 = F.normalize(input.View2, dim: -1);
        var e1 = KnnGraph(z1, n, k);
        var e2 = KnnGraph(z2, n, k);
        if (messagePassing is not null)
        {
            z1 = F.normalize(messagePassing.call(z1, e1), dim: -1);
            z2 = F.normalize(messagePassing.call(z2, e2), dim: -1);
        }

        var vertex = z1.matmul(z2.t());
        if (input.LocalFeatures1 is not null || input.LocalFeatures2 is not null)
        {
            vertex = vertex + (options.LocalWeight * LocalAffinity(input.LocalFeatures1, input.LocalFeatures2, n));
        }

        if (options.Order == GraphMatchingOrder.First)
        {
            return new Graphs(vertex, null, null, null);
        }

        var edge = options.EdgeWeight * EdgeFeatures(z1, e1).matmul(EdgeFeatures(z2, e2).t());
        return new Graphs(vertex, edge, e1, e2);
    }

    private static GraphEdges KnnGraph(Tensor z, int n, int k)
    {
        using var sim = z.detach().matmul(z.detach().t());
        return GraphEdges.KNearest(DifferentiableMatching.ToFloats(sim), n, k);
    }

    private static Tensor EdgeFeatures(Tensor z, GraphEdges edges)
    {
        var src = tensor(edges.Sources.ToArray().Select(i => (long)i).ToArray(), device: z.device);
        var dst = tensor(edges.Targets.ToArray().Select(i => (long)i).ToArray(), device: z.device);
        return F.normalize(z.index_select(0, src) - z.index_select(0, dst), dim: -1);
    }

    /// <summary>local[i,a] = mean over i's local features of the best cosine similarity among a's local features.</summary>
    private static Tensor LocalAffinity(Tensor? l1, Tensor? l2, int n)
    {
        if (l1 is null || l2 is null)
        {
            throw new ArgumentException("Local features must be given for both views or for neither.", nameof(l1));
        }

        Check.Rank(l1, 3, "LocalFeatures1", "N x P x D");
        Check.Rank(l2, 3, "LocalFeatures2", "N x Q x D");
        if (l1.shape[0] != n || l2.shape[0] != n || l1.shape[2] != l2.shape[2])
        {
            throw new ArgumentException($"Local features [{string.Join(", ", l1.shape)}] and [{string.Join(", ", l2.shape)}] must both have N = {n} rows and the same width.", nameof(l2));
        }

        long p = l1.shape[1], q = l2.shape[1], d = l1.shape[2];
        var a = F.normalize(l1, dim: -1).reshape(n * p, d);
        var b = F.normalize(l2, dim: -1).reshape(n * q, d);
        var sims = a.matmul(b.t()).reshape(n, p, n, q);
        return sims.amax([3]).mean([1]);
    }

    private sealed record Graphs(Tensor Vertex, Tensor? Edge, GraphEdges? Edges1, GraphEdges? Edges2);
}

/// <summary>
/// One message-passing step on a graph of embeddings: h_i = z_i + W mean_{j in N(i)} z_j + b (the optional
/// refinement of <see cref="GraphMatchingLoss"/>). W starts at zero, so the step starts as the identity.
/// </summary>
public sealed class GraphMessagePassing : nn.Module<Tensor, GraphEdges, Tensor>
{
    private readonly Linear message;

    /// <summary>Creates the layer.</summary>
    /// <param name="dim">Embedding width D.</param>
    public GraphMessagePassing(int dim)
        : base(nameof(GraphMessagePassing))
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(dim, 1);
        message = nn.Linear(dim, dim);
        using (no_grad())
        {
            message.weight!.zero_();
            message.bias!.zero_();
        }

        RegisterComponents();
    }

    /// <summary>Refines the node embeddings.</summary>
    /// <param name="input">Node embeddings (N x D).</param>
    /// <param name="edges">The graph (messages flow from each edge's target to its source).</param>
    /// <returns>The refined embeddings (N x D).</returns>
    public override Tensor forward(Tensor input, GraphEdges edges)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(edges);
        using var scope = NewDisposeScope();
        var n = input.shape[0];
        var adjacency = zeros([n, n], dtype: input.dtype, device: input.device);
        var src = tensor(edges.Sources.ToArray().Select(i => (long)i).ToArray(), device: input.device);
        var dst = tensor(edges.Targets.ToArray().Select(i => (long)i).ToArray(), device: input.device);
        adjacency.index_put_(ones([edges.Count], dtype: input.dtype, device: input.device), src, dst);
        var degree = adjacency.sum(dim: 1, keepdim: true).clamp_min(1);
        var mean = (adjacency / degree).matmul(input);
        return scope.MoveToOuter(input + message.forward(mean));
    }
}
