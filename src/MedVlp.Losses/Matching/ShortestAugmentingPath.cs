using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace MedVlp.Losses;

/// <summary>
/// The exact shortest-augmenting-path solver for the rectangular linear assignment problem (Jonker and Volgenant 1987,
/// in the form without initialisation given by Crouse 2016, "On implementing 2D rectangular assignment algorithms",
/// IEEE TAES 52(4)): rows are added one at a time; each addition runs Dijkstra on the reduced costs
/// <c>c[i,j] - u[i] - v[j]</c> from the new row to the nearest free column, updates the dual variables so the reduced
/// costs stay non-negative, and flips the alternating path.
/// </summary>
/// <remarks>
/// <para>The Dijkstra relaxation of one row against every column is the inner loop; it runs over the dense row with
/// <see cref="Vector{T}"/> (relax, record the predecessor row, and track the minimum over unvisited columns in one pass).
/// Visited columns are masked rather than removed, so the loop stays branch-free and contiguous.</para>
/// <para>Preconditions (checked by <see cref="LinearAssignment"/>): <c>rows &lt;= cols</c>, minimisation, no NaN and no
/// <c>-∞</c>; <c>+∞</c> marks a forbidden pair. Predecessor rows are stored as <typeparamref name="T"/> so that the
/// whole relaxation is one vector type; row indices are exact in <see cref="float"/> up to 2^24 rows.</para>
/// </remarks>
/// <typeparam name="T"><see cref="float"/> or <see cref="double"/>.</typeparam>
internal sealed class ShortestAugmentingPath<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly int rows;
    private readonly int cols;
    private readonly T[] u;
    private readonly T[] v;
    private readonly T[] shortest;
    private readonly T[] predecessor;
    private readonly T[] visited;
    private readonly int[] rowForCol;
    private readonly int[] visitedRows;
    private readonly int[] visitedCols;

    /// <summary>Allocates the work arrays for a <paramref name="rows"/> x <paramref name="cols"/> problem.</summary>
    public ShortestAugmentingPath(int rows, int cols)
    {
        if (rows > cols)
        {
            throw new ArgumentException("The core solver needs rows <= cols; transpose first.", nameof(rows));
        }

        this.rows = rows;
        this.cols = cols;
        u = new T[rows];
        v = new T[cols];
        shortest = new T[cols];
        predecessor = new T[cols];
        visited = new T[cols];
        rowForCol = new int[cols];
        visitedRows = new int[rows];
        visitedCols = new int[cols];
    }

    /// <summary>Solves the minimisation; writes, for every row, its column into <paramref name="colForRow"/>.</summary>
    /// <exception cref="InfeasibleAssignmentException">Some row cannot be assigned through finite entries.</exception>
    public void Solve(ReadOnlySpan<T> cost, Span<int> colForRow, CancellationToken cancellationToken = default)
    {
        Array.Clear(u);
        Array.Clear(v);
        Array.Fill(rowForCol, -1);
        colForRow[..rows].Fill(-1);
        for (var current = 0; current < rows; current++)
        {
            if ((current & 63) == 0)
            {
                cancellationToken.ThrowIfCancellationRequested();
            }

            Augment(cost, current, colForRow);
        }
    }

    private void Augment(ReadOnlySpan<T> cost, int current, Span<int> colForRow)
    {
        Array.Fill(shortest, T.PositiveInfinity);
        Array.Clear(visited);
        var nVisitedRows = 0;
        var nVisitedCols = 0;
        var minValue = T.Zero;
        var row = current;
        int sink;
        while (true)
        {
            visitedRows[nVisitedRows++] = row;
            var lowest = Relax(cost.Slice(row * cols, cols), row, minValue - u[row]);
            if (T.IsPositiveInfinity(lowest))
            {
                throw new InfeasibleAssignmentException(
                    $"The cost matrix is infeasible: row {current} cannot be assigned without a forbidden (infinite) entry.");
            }

            var col = PickColumn(lowest);
            minValue = lowest;
            visited[col] = T.One;
            visitedCols[nVisitedCols++] = col;
            if (rowForCol[col] < 0)
            {
                sink = col;
                break;
            }

            row = rowForCol[col];
        }

        // Dual update: keeps every reduced cost non-negative and the new path tight.
        u[current] += minValue;
        for (var k = 1; k < nVisitedRows; k++)
        {
            var r = visitedRows[k];
            u[r] += minValue - shortest[colForRow[r]];
        }

        for (var k = 0; k < nVisitedCols; k++)
        {
            var c = visitedCols[k];
            v[c] -= minValue - shortest[c];
        }

        // Flip the alternating path from the sink back to the new row.
        var j = sink;
        while (true)
        {
            var i = int.CreateTruncating(predecessor[j]);
            rowForCol[j] = i;
            (colForRow[i], j) = (j, colForRow[i]);
            if (i == current)
            {
                break;
            }
        }
    }

    /// <summary>
    /// One Dijkstra relaxation from <paramref name="row"/>: for every unvisited column, <c>d = offset + c[row,j] - v[j]</c>
    /// replaces the tentative distance when smaller (recording the predecessor). Returns the smallest tentative
    /// distance over unvisited columns.
    /// </summary>
    private T Relax(ReadOnlySpan<T> costRow, int row, T offset)
    {
        var rowT = T.CreateTruncating(row);
        var n = cols;
        ref var c0 = ref MemoryMarshal.GetReference(costRow);
        ref var v0 = ref MemoryMarshal.GetArrayDataReference(v);
        ref var s0 = ref MemoryMarshal.GetArrayDataReference(shortest);
        ref var p0 = ref MemoryMarshal.GetArrayDataReference(predecessor);
        ref var m0 = ref MemoryMarshal.GetArrayDataReference(visited);
        var j = 0;
        var lowest = T.PositiveInfinity;
        if (Vector.IsHardwareAccelerated && n >= Vector<T>.Count)
        {
            var width = Vector<T>.Count;
            var offsetV = new Vector<T>(offset);
            var rowV = new Vector<T>(rowT);
            var inf = new Vector<T>(T.PositiveInfinity);
            var minV = inf;
            for (; j <= n - width; j += width)
            {
                var c = Vector.LoadUnsafe(ref c0, (nuint)j);
                var vv = Vector.LoadUnsafe(ref v0, (nuint)j);
                var s = Vector.LoadUnsafe(ref s0, (nuint)j);
                var open = Vector.Equals(Vector.LoadUnsafe(ref m0, (nuint)j), Vector<T>.Zero);
                var d = (offsetV + c) - vv;
                var better = Vector.BitwiseAnd(Vector.LessThan(d, s), open);
                s = Vector.ConditionalSelect(better, d, s);
                s.StoreUnsafe(ref s0, (nuint)j);
                Vector.ConditionalSelect(better, rowV, Vector.LoadUnsafe(ref p0, (nuint)j)).StoreUnsafe(ref p0, (nuint)j);
                minV = Vector.Min(minV, Vector.ConditionalSelect(open, s, inf));
            }

            for (var k = 0; k < width; k++)
            {
                lowest = T.Min(lowest, minV[k]);
            }
        }

        for (; j < n; j++)
        {
            if (Unsafe.Add(ref m0, j) != T.Zero)
            {
                continue;
            }

            var d = (offset + Unsafe.Add(ref c0, j)) - Unsafe.Add(ref v0, j);
            ref var s = ref Unsafe.Add(ref s0, j);
            if (d < s)
            {
                s = d;
                Unsafe.Add(ref p0, j) = rowT;
            }

            lowest = T.Min(lowest, s);
        }

        return lowest;
    }

    /// <summary>
    /// An unvisited column at distance <paramref name="lowest"/>, preferring a free one (which ends the search at once;
    /// on matrices with many ties this keeps the work near O(n^2)).
    /// </summary>
    private int PickColumn(T lowest)
    {
        var n = cols;
        ref var s0 = ref MemoryMarshal.GetArrayDataReference(shortest);
        ref var m0 = ref MemoryMarshal.GetArrayDataReference(visited);
        var first = -1;
        var j = 0;
        if (Vector.IsHardwareAccelerated && n >= Vector<T>.Count)
        {
            var width = Vector<T>.Count;
            var lowestV = new Vector<T>(lowest);
            for (; j <= n - width; j += width)
            {
                var hit = Vector.BitwiseAnd(
                    Vector.Equals(Vector.LoadUnsafe(ref s0, (nuint)j), lowestV),
                    Vector.Equals(Vector.LoadUnsafe(ref m0, (nuint)j), Vector<T>.Zero));
                if (hit == Vector<T>.Zero)
                {
                    continue;
                }

                for (var k = 0; k < width; k++)
                {
                    if (hit[k] != T.Zero)
                    {
                        if (rowForCol[j + k] < 0)
                        {
                            return j + k;
                        }

                        if (first < 0)
                        {
                            first = j + k;
                        }
                    }
                }
            }
        }

        for (; j < n; j++)
        {
            if (Unsafe.Add(ref m0, j) == T.Zero && Unsafe.Add(ref s0, j) == lowest)
            {
                if (rowForCol[j] < 0)
                {
                    return j;
                }

                if (first < 0)
                {
                    first = j;
                }
            }
        }

        return first;
    }
}
