using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace MedVlp.Losses;

/// <summary>
/// Exact solver of the (rectangular) linear assignment problem, the same problem as scipy's
/// <c>scipy.optimize.linear_sum_assignment</c>: choose at most one column per row and at most one row per column,
/// assigning <c>min(rows, cols)</c> pairs, so that the sum of the chosen costs is minimal (or maximal).
/// </summary>
/// <remarks>
/// <para>Algorithm: shortest augmenting paths with dual variables (Jonker-Volgenant, in Crouse's 2016 form used by
/// scipy), with SIMD inner loops over the dense cost row. The result is optimal; where several assignments share the
/// optimal cost (ties), the one returned may differ from scipy's.</para>
/// <para>Result: for every row, the column assigned to it. When <c>rows &lt;= cols</c> every row is assigned. When
/// <c>rows &gt; cols</c> the problem is solved on the transpose (as scipy does), every column gets one row, and the
/// <c>rows - cols</c> rows left over hold <c>-1</c>.</para>
/// <para>Entries: <c>+∞</c> (in a maximisation <c>-∞</c>) forbids a pair; if no complete assignment avoids the forbidden
/// pairs, <see cref="InfeasibleAssignmentException"/> is thrown. NaN, and <c>-∞</c> in a minimisation (<c>+∞</c> in a
/// maximisation), throw <see cref="ArgumentException"/>.</para>
/// <para>Single-precision costs are solved in single precision (the dual variables too), double-precision costs in
/// double precision. Thread-safe: every call uses its own work arrays.</para>
/// </remarks>
public static class LinearAssignment
{
    /// <summary>Minimum-cost assignment of a row-major cost matrix.</summary>
    /// <param name="cost">The cost matrix, <c>rows x cols</c>.</param>
    /// <returns>For each row, the assigned column (<c>-1</c> for rows left over when <c>rows &gt; cols</c>).</returns>
    /// <exception cref="ArgumentException">A NaN or <c>-∞</c> entry.</exception>
    /// <exception cref="InfeasibleAssignmentException">No assignment avoids the <c>+∞</c> entries.</exception>
    public static int[] Solve(float[,] cost) => Solve(cost, maximize: false);

    /// <summary>Minimum- or maximum-cost assignment of a cost matrix.</summary>
    /// <param name="cost">The cost (or, with <paramref name="maximize"/>, profit) matrix, <c>rows x cols</c>.</param>
    /// <param name="maximize">Maximise the total instead of minimising it.</param>
    /// <returns>For each row, the assigned column (<c>-1</c> for rows left over when <c>rows &gt; cols</c>).</returns>
    public static int[] Solve(float[,] cost, bool maximize)
    {
        ArgumentNullException.ThrowIfNull(cost);
        return Solve(AsSpan(cost), cost.GetLength(0), cost.GetLength(1), maximize);
    }

    /// <summary>Minimum-cost assignment of a double-precision cost matrix (solved in double precision).</summary>
    /// <param name="cost">The cost matrix, <c>rows x cols</c>.</param>
    /// <returns>For each row, the assigned column (<c>-1</c> for rows left over when <c>rows &gt; cols</c>).</returns>
    public static int[] Solve(double[,] cost) => Solve(cost, maximize: false);

    /// <summary>Minimum- or maximum-cost assignment of a double-precision matrix (solved in double precision).</summary>
    /// <param name="cost">The cost (or profit) matrix, <c>rows x cols</c>.</param>
    /// <param name="maximize">Maximise the total instead of minimising it.</param>
    /// <returns>For each row, the assigned column (<c>-1</c> for rows left over when <c>rows &gt; cols</c>).</returns>
    public static int[] Solve(double[,] cost, bool maximize)
    {
        ArgumentNullException.ThrowIfNull(cost);
        return Solve(AsSpan(cost), cost.GetLength(0), cost.GetLength(1), maximize);
    }

    /// <summary>Assignment of a row-major cost matrix held in a span (no copy for a minimisation with rows &lt;= cols).</summary>
    /// <param name="cost">The <c>rows * cols</c> entries, row-major.</param>
    /// <param name="rows">Number of rows.</param>
    /// <param name="cols">Number of columns.</param>
    /// <param name="maximize">Maximise the total instead of minimising it.</param>
    /// <returns>For each row, the assigned column (<c>-1</c> for rows left over when <c>rows &gt; cols</c>).</returns>
    public static int[] Solve(ReadOnlySpan<float> cost, int rows, int cols, bool maximize = false)
    {
        var result = new int[Math.Max(rows, 0)];
        Solve(cost, rows, cols, result, maximize);
        return result;
    }

    /// <summary>Assignment of a row-major double-precision cost matrix held in a span.</summary>
    /// <param name="cost">The <c>rows * cols</c> entries, row-major.</param>
    /// <param name="rows">Number of rows.</param>
    /// <param name="cols">Number of columns.</param>
    /// <param name="maximize">Maximise the total instead of minimising it.</param>
    /// <returns>For each row, the assigned column (<c>-1</c> for rows left over when <c>rows &gt; cols</c>).</returns>
    public static int[] Solve(ReadOnlySpan<double> cost, int rows, int cols, bool maximize = false)
    {
        var result = new int[Math.Max(rows, 0)];
        Solve(cost, rows, cols, result, maximize);
        return result;
    }

    /// <summary>Assignment written into a caller's buffer (for repeated solves without allocating the result).</summary>
    /// <param name="cost">The <c>rows * cols</c> entries, row-major.</param>
    /// <param name="rows">Number of rows.</param>
    /// <param name="cols">Number of columns.</param>
    /// <param name="colForRow">Receives, for each of the <paramref name="rows"/> rows, its column or <c>-1</c>.</param>
    /// <param name="maximize">Maximise the total instead of minimising it.</param>
    /// <param name="cancellationToken">Checked between row augmentations.</param>
    public static void Solve(ReadOnlySpan<float> cost, int rows, int cols, Span<int> colForRow, bool maximize = false, CancellationToken cancellationToken = default)
        => SolveCore(cost, rows, cols, colForRow, maximize, cancellationToken);

    /// <summary>Assignment of double-precision costs written into a caller's buffer.</summary>
    /// <param name="cost">The <c>rows * cols</c> entries, row-major.</param>
    /// <param name="rows">Number of rows.</param>
    /// <param name="cols">Number of columns.</param>
    /// <param name="colForRow">Receives, for each of the <paramref name="rows"/> rows, its column or <c>-1</c>.</param>
    /// <param name="maximize">Maximise the total instead of minimising it.</param>
    /// <param name="cancellationToken">Checked between row augmentations.</param>
    public static void Solve(ReadOnlySpan<double> cost, int rows, int cols, Span<int> colForRow, bool maximize = false, CancellationToken cancellationToken = default)
        => SolveCore(cost, rows, cols, colForRow, maximize, cancellationToken);

    /// <summary>The total cost of an assignment (entries of rows marked <c>-1</c> are not counted), summed in double precision.</summary>
    /// <param name="cost">The cost matrix.</param>
    /// <param name="colForRow">For each row, its column or <c>-1</c>.</param>
    /// <returns>The sum of the chosen entries.</returns>
    public static double TotalCost(float[,] cost, ReadOnlySpan<int> colForRow)
    {
        ArgumentNullException.ThrowIfNull(cost);
        CheckAssignmentLength(cost.GetLength(0), colForRow);
        var total = 0.0;
        for (var i = 0; i < colForRow.Length; i++)
        {
            if (colForRow[i] >= 0)
            {
                total += cost[i, colForRow[i]];
            }
        }

        return total;
    }

    /// <summary>The total cost of an assignment (entries of rows marked <c>-1</c> are not counted).</summary>
    /// <param name="cost">The cost matrix.</param>
    /// <param name="colForRow">For each row, its column or <c>-1</c>.</param>
    /// <returns>The sum of the chosen entries.</returns>
    public static double TotalCost(double[,] cost, ReadOnlySpan<int> colForRow)
    {
        ArgumentNullException.ThrowIfNull(cost);
        CheckAssignmentLength(cost.GetLength(0), colForRow);
        var total = 0.0;
        for (var i = 0; i < colForRow.Length; i++)
        {
            if (colForRow[i] >= 0)
            {
                total += cost[i, colForRow[i]];
            }
        }

        return total;
    }

    private static void CheckAssignmentLength(int rows, ReadOnlySpan<int> colForRow)
    {
        if (colForRow.Length != rows)
        {
            throw new ArgumentException($"The assignment has {colForRow.Length} entries; the cost matrix has {rows} rows.", nameof(colForRow));
        }
    }

    private static void SolveCore<T>(ReadOnlySpan<T> cost, int rows, int cols, Span<int> colForRow, bool maximize, CancellationToken cancellationToken)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(cols);
        if ((long)rows * cols != cost.Length)
        {
            throw new ArgumentException($"The cost span has {cost.Length} entries; {rows} x {cols} needs {(long)rows * cols}.", nameof(cost));
        }

        if (colForRow.Length < rows)
        {
            throw new ArgumentException($"The result span has {colForRow.Length} entries; it needs one per row ({rows}).", nameof(colForRow));
        }

        colForRow[..rows].Fill(-1);
        if (rows == 0 || cols == 0)
        {
            return;
        }

        // Bring the problem to minimisation with rows <= cols; copy only when a change is needed.
        T[]? work = null;
        if (maximize)
        {
            work = new T[cost.Length];
            TensorPrimitives.Negate(cost, work);
        }

        var source = work is null ? cost : work;
        Validate(source, maximize);
        if (rows <= cols)
        {
            new ShortestAugmentingPath<T>(rows, cols).Solve(source, colForRow, cancellationToken);
            return;
        }

        var transposed = new T[cost.Length];
        for (var i = 0; i < rows; i++)
        {
            var row = source.Slice(i * cols, cols);
            for (var j = 0; j < cols; j++)
            {
                transposed[(j * rows) + i] = row[j];
            }
        }

        var rowForCol = new int[cols];
        new ShortestAugmentingPath<T>(cols, rows).Solve(transposed, rowForCol, cancellationToken);
        for (var j = 0; j < cols; j++)
        {
            colForRow[rowForCol[j]] = j;
        }
    }

    private static void Validate<T>(ReadOnlySpan<T> cost, bool negated)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        // TensorPrimitives.Min propagates NaN, so one SIMD pass finds both NaN and -inf.
        var min = TensorPrimitives.Min(cost);
        if (T.IsNaN(min))
        {
            throw new ArgumentException("The cost matrix contains NaN.", nameof(cost));
        }

        if (T.IsNegativeInfinity(min))
        {
            throw new ArgumentException(
                negated
                    ? "The profit matrix contains +inf; in a maximisation only -inf may mark a forbidden pair."
                    : "The cost matrix contains -inf; in a minimisation only +inf may mark a forbidden pair.",
                nameof(cost));
        }
    }

    private static ReadOnlySpan<T> AsSpan<T>(T[,] matrix)
        where T : unmanaged
        => MemoryMarshal.CreateReadOnlySpan(ref Unsafe.As<byte, T>(ref MemoryMarshal.GetArrayDataReference(matrix)), matrix.Length);
}
