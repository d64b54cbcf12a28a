namespace MedVlp.Losses;

/// <summary>
/// A graph matching problem in Lawler's quadratic-assignment form, as a maximisation over (partial) permutation
/// matrices X (<see cref="Rows"/> x <see cref="Cols"/>, every row matched once when Rows &lt;= Cols):
/// <code>
/// maximise  sum_{i,a} Cv[i,a] X[i,a]  +  sum_{e in E1, f in E2} Ce[e,f] X[src(e), src(f)] X[dst(e), dst(f)]
/// </code>
/// with Cv the vertex affinity and Ce the edge affinity between the edges of graph 1 (<see cref="Edges1"/>) and
/// graph 2 (<see cref="Edges2"/>). Without edges it is the first-order (linear assignment) problem.
/// </summary>
/// <remarks>
/// The edge term counts Ce[e,f] whenever edge e of graph 1 is mapped onto edge f of graph 2. Koopmans-Beckmann's
/// form trace(A X B^T X^T) is the special case Ce[e,f] = w1(e) w2(f).
/// </remarks>
public sealed class MatchingProblem
{
    private readonly float[] vertexAffinity;
    private readonly float[]? edgeAffinity;

    /// <summary>A first-order problem: only vertex affinities.</summary>
    /// <param name="rows">Nodes of graph 1.</param>
    /// <param name="cols">Nodes of graph 2.</param>
    /// <param name="vertexAffinity">Row-major <c>rows x cols</c> affinities (copied).</param>
    public MatchingProblem(int rows, int cols, ReadOnlySpan<float> vertexAffinity)
        : this(rows, cols, vertexAffinity, null, null, default)
    {
    }

    /// <summary>A second-order problem: vertex affinities and edge-to-edge affinities.</summary>
    /// <param name="rows">Nodes of graph 1.</param>
    /// <param name="cols">Nodes of graph 2.</param>
    /// <param name="vertexAffinity">Row-major <c>rows x cols</c> affinities (copied).</param>
    /// <param name="edges1">Edges of graph 1 (over <paramref name="rows"/> nodes).</param>
    /// <param name="edges2">Edges of graph 2 (over <paramref name="cols"/> nodes).</param>
    /// <param name="edgeAffinity">Row-major <c>|E1| x |E2|</c> affinities (copied).</param>
    public MatchingProblem(int rows, int cols, ReadOnlySpan<float> vertexAffinity, GraphEdges? edges1, GraphEdges? edges2, ReadOnlySpan<float> edgeAffinity)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(cols);
        if (vertexAffinity.Length != (long)rows * cols)
        {
            throw new ArgumentException($"The vertex affinity has {vertexAffinity.Length} entries; {rows} x {cols} needs {(long)rows * cols}.", nameof(vertexAffinity));
        }

        Rows = rows;
        Cols = cols;
        this.vertexAffinity = vertexAffinity.ToArray();
        if (edges1 is null && edges2 is null)
        {
            if (!edgeAffinity.IsEmpty)
            {
                throw new ArgumentException("Edge affinities were given without the two edge lists.", nameof(edgeAffinity));
            }

            return;
        }

        if (edges1 is null || edges2 is null)
        {
            throw new ArgumentException("A second-order problem needs the edges of both graphs.", edges1 is null ? nameof(edges1) : nameof(edges2));
        }

        if (edges1.NodeCount != rows || edges2.NodeCount != cols)
        {
            throw new ArgumentException($"The graphs have {edges1.NodeCount} and {edges2.NodeCount} nodes; the problem is {rows} x {cols}.", nameof(edges1));
        }

        if (edgeAffinity.Length != (long)edges1.Count * edges2.Count)
        {
            throw new ArgumentException($"The edge affinity has {edgeAffinity.Length} entries; {edges1.Count} x {edges2.Count} edges need {(long)edges1.Count * edges2.Count}.", nameof(edgeAffinity));
        }

        Edges1 = edges1;
        Edges2 = edges2;
        this.edgeAffinity = edgeAffinity.ToArray();
    }

    /// <summary>Nodes of graph 1 (rows of X).</summary>
    public int Rows { get; }

    /// <summary>Nodes of graph 2 (columns of X).</summary>
    public int Cols { get; }

    /// <summary>The vertex affinity Cv, row-major <c>Rows x Cols</c>.</summary>
    public ReadOnlySpan<float> VertexAffinity => vertexAffinity;

    /// <summary>Edges of graph 1, or null for a first-order problem.</summary>
    public GraphEdges? Edges1 { get; }

    /// <summary>Edges of graph 2, or null for a first-order problem.</summary>
    public GraphEdges? Edges2 { get; }

    /// <summary>The edge affinity Ce, row-major <c>|E1| x |E2|</c> (empty for a first-order problem).</summary>
    public ReadOnlySpan<float> EdgeAffinity => edgeAffinity;

    /// <summary>Whether the problem has the second-order (edge) term.</summary>
    public bool IsQuadratic => Edges1 is not null;

    /// <summary>The objective of an assignment (for each row its column, or -1), in double precision.</summary>
    /// <param name="colForRow">The assignment.</param>
    /// <returns>Vertex term plus edge term.</returns>
    public double Objective(ReadOnlySpan<int> colForRow)
    {
        if (colForRow.Length != Rows)
        {
            throw new ArgumentException($"The assignment has {colForRow.Length} entries; the problem has {Rows} rows.", nameof(colForRow));
        }

        var total = 0.0;
        for (var i = 0; i < Rows; i++)
        {
            if (colForRow[i] >= 0)
            {
                total += vertexAffinity[(i * Cols) + colForRow[i]];
            }
        }

        if (Edges1 is null || Edges2 is null || edgeAffinity is null)
        {
            return total;
        }

        // Edge e maps onto edge f exactly when both its ends map onto f's ends.
        var s2 = Edges2.Sources;
        var t2 = Edges2.Targets;
        for (var e = 0; e < Edges1.Count; e++)
        {
            var a = colForRow[Edges1.Sources[e]];
            var b = colForRow[Edges1.Targets[e]];
            if (a < 0 || b < 0)
            {
                continue;
            }

            var row = e * Edges2.Count;
            for (var f = 0; f < s2.Length; f++)
            {
                if (s2[f] == a && t2[f] == b)
                {
                    total += edgeAffinity[row + f];
                }
            }
        }

        return total;
    }
}
