namespace MedVlp.Volumes;

/// <summary>
/// Thrown when a file cannot be read as a volume or as a preprocessing pipeline: it is truncated, its header is
/// inconsistent, it names a data file outside its folder or a file that is not a regular file, it asks for more than
/// <see cref="ResourceLimits"/> allow, or it uses a feature MedVlp does not support; also when a preprocessing step cannot
/// process a volume (its output would be too large). The message names the file, the field and what was expected.
/// </summary>
public sealed class VolumeFormatException : IOException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="filePath">The file that was being read, or <see langword="null"/> for a stream.</param>
    /// <param name="field">The header field or part of the file at fault (for example <c>dim[1]</c>).</param>
    /// <param name="problem">What was wrong and what was expected.</param>
    /// <param name="innerException">The underlying error, if any.</param>
    public VolumeFormatException(string? filePath, string? field, string problem, Exception? innerException = null)
        : base(Compose(filePath, field, problem), innerException)
    {
        FilePath = filePath;
        Field = field;
        Problem = problem;
    }

    /// <summary>The file that was being read, if known.</summary>
    public string? FilePath { get; }

    /// <summary>The header field or part of the file at fault, if any.</summary>
    public string? Field { get; }

    /// <summary>What was wrong, without the file name.</summary>
    public string Problem { get; }

    private static string Compose(string? filePath, string? field, string problem)
    {
        var where = filePath is null ? "" : $"{filePath}: ";
        var what = string.IsNullOrEmpty(field) ? "" : $"{field}: ";
        return where + what + problem;
    }
}
