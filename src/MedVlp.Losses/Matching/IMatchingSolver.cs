namespace MedVlp.Losses;

/// <summary>
/// A combinatorial solver for <see cref="MatchingProblem"/> (maximisation). Any implementation can be differentiated
/// with <see cref="DifferentiableMatching"/>, which treats it as a black box.
/// </summary>
public interface IMatchingSolver
{
    /// <summary>Whether the solver uses the problem's edge term (a first-order solver ignores it).</summary>
    bool UsesEdges { get; }

    /// <summary>Solves the problem.</summary>
    /// <param name="problem">The problem.</param>
    /// <param name="colForRow">Receives, for each of the <see cref="MatchingProblem.Rows"/> rows, its column (or -1 when rows outnumber columns).</param>
    /// <param name="cancellationToken">Cancels a long solve.</param>
    void Solve(MatchingProblem problem, Span<int> colForRow, CancellationToken cancellationToken = default);
}

/// <summary>
/// The first-order solver: the exact linear assignment of the vertex affinities (<see cref="LinearAssignment"/>,
/// maximising); the edge term, if any, is ignored.
/// </summary>
public sealed class LinearAssignmentSolver : IMatchingSolver
{
    /// <summary>The shared instance (the solver is stateless).</summary>
    public static LinearAssignmentSolver Instance { get; } = new();

    /// <inheritdoc />
    public bool UsesEdges => false;

    /// <inheritdoc />
    public void Solve(MatchingProblem problem, Span<int> colForRow, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(problem);
        LinearAssignment.Solve(problem.VertexAffinity, problem.Rows, problem.Cols, colForRow, maximize: true, cancellationToken);
    }
}
