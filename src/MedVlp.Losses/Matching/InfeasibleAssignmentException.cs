namespace MedVlp.Losses;

/// <summary>
/// Thrown when an assignment problem has no feasible solution: some row (or, for a problem with more rows than
/// columns, some column) can only be matched through entries that are <c>+∞</c> in a minimisation
/// (<c>-∞</c> in a maximisation). Same condition as scipy's <c>ValueError("cost matrix is infeasible")</c>.
/// </summary>
public sealed class InfeasibleAssignmentException : ArgumentException
{
    /// <summary>Creates the exception with the default message.</summary>
    public InfeasibleAssignmentException()
        : base("The cost matrix is infeasible: no complete assignment avoids the infinite (forbidden) entries.")
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    /// <param name="message">What was infeasible.</param>
    public InfeasibleAssignmentException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and an inner exception.</summary>
    /// <param name="message">What was infeasible.</param>
    /// <param name="innerException">The cause.</param>
    public InfeasibleAssignmentException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
