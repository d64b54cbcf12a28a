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
/// <para>The Dijkstra step relaxes one cost row against every column; that is the inner loop, one pass over the dense row
/// with <see cref="Vector{T}"/> that relaxes, records the predecessor row, and tracks the nearest column (with its index)
/// and the nearest free column. Columns already reached in the current search are excluded without a mask: their
/// relaxation offset is set to -inf (so their distance is never lowered) and their distance to +inf (so they are never
/// the minimum); their final distance is kept aside for the dual update.</para>
/// <para>Among columns at the same distance a free one is preferred, which ends the search at once: on matrices with many
/// ties (all-equal, integer) this keeps the work near O(n^2).</para>
/// <para>Preconditions (checked by <see cref="LinearAssignment"/>): <c>rows &lt;= cols</c>, minimisation, no NaN and no
/// <c>-∞</c>; <c>+∞</c> marks a forbidden pair. Predecessor rows and column indices are stored as
/// <typeparamref name="T"/> so the whole pass is one vector type; indices are exact in <see cref="float"/> up to 2^24.</para>
/// </remarks>
/// <typeparam name="T"><see cref="float"/> or <see cref="double"/>.</typeparam>
internal sealed class ShortestAugmentingPath<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly int rows;
    private readonly int cols;
    private readonly T[] u;
    private readonly T[] v;
    private readonly T[] vRelax;   // v, or -inf for columns visited in the current search
    private readonly T[] shortest; // tentative distance; +inf once visited (final value in visitedDist)
    private readonly T[] predecessor;
    private readonly T[] free;     // 1 while the column is unassigned
    private readonly int[] rowForCol;
    private readonly int[] visitedRows;
    private readonly int[] visitedCols;
    private readonly T[] visitedDist;
    private readonly T[] colDist;

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
        vRelax = new T[cols];
        shortest = new T[cols];
        predecessor = new T[cols];
        free = new T[cols];
        rowForCol = new int[cols];
        visitedRows = new int[rows];
        visitedCols = new int[cols];
        visitedDist = new T[cols];
        colDist = new T[cols];
    }

    /// <summary>Solves the minimisation; writes, for every row, its column into <paramref name="colForRow"/>.</summary>
    /// <exception cref="InfeasibleAssignmentException">Some row cannot be assigned through finite entries.</exception>
    public void Solve(ReadOnlySpan<T> cost, Span<int> colForRow, CancellationToken cancellationToken = default)
    {
        Array.Clear(u);
        Array.Clear(v);
        Array.Clear(vRelax);
        Array.Fill(free, T.One);
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
        var nVisitedRows = 0;
        var nVisitedCols = 0;
        var minValue = T.Zero;
        var row = current;
        int sink;
        while (true)
        {
            visitedRows[nVisitedRows++] = row;
            var col = Relax(cost.Slice(row * cols, cols), row, minValue - u[row], out var lowest);
            if (T.IsPositiveInfinity(lowest))
            {
                throw new InfeasibleAssignmentException(
                    $"The cost matrix is infeasible: row {current} cannot be assigned without a forbidden (infinite) entry.");
            }

            minValue = lowest;
            visitedDist[nVisitedCols] = lowest;
            visitedCols[nVisitedCols++] = col;
            colDist[col] = lowest;
            shortest[col] = T.PositiveInfinity;
            vRelax[col] = T.NegativeInfinity;
            if (rowForCol[col] < 0)
            {
                sink = col;
                break;
            }

            row = rowForCol[col];
        }

        u[current] += minValue;
        for (var k = 1; k < nVisitedRows; k++)
        {
            var r = visitedRows[k];
            u[r] += minValue - colDist[colForRow[r]];
        }

        for (var k = 0; k < nVisitedCols; k++)
        {
            var c = visitedCols[k];
            v[c] -= minValue - visitedDist[k];
            vRelax[c] = v[c];
        }

        free[sink] = T.Zero;
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
    /// One Dijkstra relaxation from <paramref name="row"/>: <c>d[j] = min(d[j], offset + c[row,j] - v[j])</c> for every
    /// column not yet reached; returns the nearest such column (a free one on ties) and its distance.
    /// </summary>
    private int Relax(ReadOnlySpan<T> costRow, int row, T offset, out T lowest)
    {
        var rowT = T.CreateTruncating(row);
        var n = cols;
        ref var c0 = ref MemoryMarshal.GetReference(costRow);
        ref var v0 = ref MemoryMarshal.GetArrayDataReference(vRelax);
        ref var s0 = ref MemoryMarshal.GetArrayDataReference(shortest);
        ref var p0 = ref MemoryMarshal.GetArrayDataReference(predecessor);
        ref var f0 = ref MemoryMarshal.GetArrayDataReference(free);
        var j = 0;
        lowest = T.PositiveInfinity;
        var lowestFree = T.PositiveInfinity;
        var best = -1;
        if (Vector.IsHardwareAccelerated && n >= Vector<T>.Count)
        {
            var width = Vector<T>.Count;
            var offsetV = new Vector<T>(offset);
            var rowV = new Vector<T>(rowT);
            var inf = new Vector<T>(T.PositiveInfinity);
            var minV = inf;
            var minFreeV = inf;
            var idxV = Vector<T>.Zero;
            var jV = Vector<T>.Indices;
            var stepV = new Vector<T>(T.CreateTruncating(width));
            for (; j <= n - width; j += width)
            {
                var d = (offsetV + Vector.LoadUnsafe(ref c0, (nuint)j)) - Vector.LoadUnsafe(ref v0, (nuint)j);
                var s = Vector.LoadUnsafe(ref s0, (nuint)j);
                var better = Vector.LessThan(d, s);
                s = Vector.ConditionalSelect(better, d, s);
                s.StoreUnsafe(ref s0, (nuint)j);
                Vector.ConditionalSelect(better, rowV, Vector.LoadUnsafe(ref p0, (nuint)j)).StoreUnsafe(ref p0, (nuint)j);
                var lt = Vector.LessThan(s, minV);
                minV = Vector.ConditionalSelect(lt, s, minV);
                idxV = Vector.ConditionalSelect(lt, jV, idxV);
                minFreeV = Vector.Min(minFreeV, Vector.ConditionalSelect(Vector.GreaterThan(Vector.LoadUnsafe(ref f0, (nuint)j), Vector<T>.Zero), s, inf));
                jV += stepV;
            }

            for (var k = 0; k < width; k++)
            {
                var idx = int.CreateTruncating(idxV[k]);
                if (minV[k] < lowest || (minV[k] == lowest && idx < best))
                {
                    lowest = minV[k];
                    best = idx;
                }

                lowestFree = T.Min(lowestFree, minFreeV[k]);
            }
        }

        for (; j < n; j++)
        {
            var d = (offset + Unsafe.Add(ref c0, j)) - Unsafe.Add(ref v0, j);
            ref var s = ref Unsafe.Add(ref s0, j);
            if (d < s)
            {
                s = d;
                Unsafe.Add(ref p0, j) = rowT;
            }

            if (s < lowest)
            {
                lowest = s;
                best = j;
            }

            if (Unsafe.Add(ref f0, j) != T.Zero)
            {
                lowestFree = T.Min(lowestFree, s);
            }
        }

        if (lowestFree == lowest && best >= 0 && free[best] == T.Zero)
        {
            for (var k = 0; k < n; k++)
            {
                if (Unsafe.Add(ref f0, k) != T.Zero && Unsafe.Add(ref s0, k) == lowest)
                {
                    return k;
                }
            }
        }

        return best;
    }
}
