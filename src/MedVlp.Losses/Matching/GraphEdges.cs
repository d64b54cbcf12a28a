namespace MedVlp.Losses;

/// <summary>
/// The directed edges of a graph over <see cref="NodeCount"/> nodes, as parallel source and target arrays
/// (edge e goes from <c>Sources[e]</c> to <c>Targets[e]</c>). Immutable.
/// </summary>
public sealed class GraphEdges
{
    private readonly int[] sources;
    private readonly int[] targets;

    /// <summary>Creates the edge list; every index must lie in [0, <paramref name="nodeCount"/>).</summary>
    /// <param name="nodeCount">Number of nodes.</param>
    /// <param name="sources">Source node of each edge.</param>
    /// <param name="targets">Target node of each edge.</param>
    public GraphEdges(int nodeCount, ReadOnlySpan<int> sources, ReadOnlySpan<int> targets)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(nodeCount);
        if (sources.Length != targets.Length)
        {
            throw new ArgumentException($"{sources.Length} sources but {targets.Length} targets; they must pair up.", nameof(targets));
        }

        for (var e = 0; e < sources.Length; e++)
        {
            if ((uint)sources[e] >= (uint)nodeCount || (uint)targets[e] >= (uint)nodeCount)
            {
                throw new ArgumentOutOfRangeException(nameof(sources), $"Edge {e} ({sources[e]} -> {targets[e]}) leaves the {nodeCount} nodes.");
            }
        }

        NodeCount = nodeCount;
        this.sources = sources.ToArray();
        this.targets = targets.ToArray();
    }

    /// <summary>Number of nodes.</summary>
    public int NodeCount { get; }

    /// <summary>Number of edges.</summary>
    public int Count => sources.Length;

    /// <summary>Source node of each edge.</summary>
    public ReadOnlySpan<int> Sources => sources;

    /// <summary>Target node of each edge.</summary>
    public ReadOnlySpan<int> Targets => targets;

    /// <summary>Every ordered pair of distinct nodes (a complete directed graph, n(n-1) edges).</summary>
    /// <param name="nodeCount">Number of nodes.</param>
    /// <returns>The edges.</returns>
    public static GraphEdges Complete(int nodeCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(nodeCount);
        var s = new List<int>();
        var t = new List<int>();
        for (var i = 0; i < nodeCount; i++)
        {
            for (var j = 0; j < nodeCount; j++)
            {
                if (i != j)
                {
                    s.Add(i);
                    t.Add(j);
                }
            }
        }

        return new GraphEdges(nodeCount, s.ToArray(), t.ToArray());
    }

    /// <summary>
    /// The k-nearest-neighbour graph of a dense similarity matrix: an edge from every node to each of its
    /// <paramref name="k"/> most similar other nodes (ties broken by the lower index).
    /// </summary>
    /// <param name="similarity">Row-major <c>n x n</c> similarities (larger = closer); the diagonal is ignored.</param>
    /// <param name="nodeCount">Number of nodes n.</param>
    /// <param name="k">Neighbours per node, 1 to n-1.</param>
    /// <returns>The n*k edges, grouped by source node in ascending order, neighbours from the most similar.</returns>
    public static GraphEdges KNearest(ReadOnlySpan<float> similarity, int nodeCount, int k)
    {
        if (similarity.Length != (long)nodeCount * nodeCount)
        {
            throw new ArgumentException($"The similarity matrix has {similarity.Length} entries; {nodeCount} x {nodeCount} needs {(long)nodeCount * nodeCount}.", nameof(similarity));
        }

        if (k < 1 || k > nodeCount - 1)
        {
            throw new ArgumentOutOfRangeException(nameof(k), k, $"k must be in [1, {nodeCount - 1}] for {nodeCount} nodes.");
        }

        var s = new int[nodeCount * k];
        var t = new int[nodeCount * k];
        var order = new int[nodeCount];
        var keys = new float[nodeCount];
        for (var i = 0; i < nodeCount; i++)
        {
            var row = similarity.Slice(i * nodeCount, nodeCount);
            for (var j = 0; j < nodeCount; j++)
            {
                order[j] = j;
                keys[j] = j == i ? float.PositiveInfinity : -row[j];
                if (float.IsNaN(keys[j]))
                {
                    throw new ArgumentException($"The similarity matrix has NaN at ({i}, {j}).", nameof(similarity));
                }
            }

            // Stable by index on ties: sort (key, index) pairs.
            Array.Sort(order, (a, b) => keys[a] != keys[b] ? keys[a].CompareTo(keys[b]) : a.CompareTo(b));
            for (var r = 0; r < k; r++)
            {
                s[(i * k) + r] = i;
                t[(i * k) + r] = order[r];
            }
        }

        return new GraphEdges(nodeCount, s, t);
    }
}
