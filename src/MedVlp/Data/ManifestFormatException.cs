namespace MedVlp.Data;

/// <summary>Thrown when a manifest cannot be used: the message lists each problem with its line and field.</summary>
public sealed class ManifestFormatException : FormatException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="manifestPath">The manifest file (or a description of the source).</param>
    /// <param name="problems">The problems, each already naming its line and field.</param>
    public ManifestFormatException(string manifestPath, IReadOnlyList<string> problems)
        : base(Compose(manifestPath, problems))
    {
        ManifestPath = manifestPath;
        Problems = problems;
    }

    /// <summary>The manifest file.</summary>
    public string ManifestPath { get; }

    /// <summary>Every problem found (at most <see cref="Manifest.MaxReportedProblems"/>).</summary>
    public IReadOnlyList<string> Problems { get; }

    private static string Compose(string path, IReadOnlyList<string> problems)
    {
        ArgumentNullException.ThrowIfNull(problems);
        return problems.Count == 1
            ? $"{path}: {problems[0]}"
            : $"{path}: {problems.Count} problems:{Environment.NewLine}  " + string.Join(Environment.NewLine + "  ", problems);
    }
}
