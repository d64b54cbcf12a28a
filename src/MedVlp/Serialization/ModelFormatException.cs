namespace MedVlp.Serialization;

/// <summary>
/// Thrown when a model file (safetensors weights, a model package's config) cannot be read: it is truncated, its header
/// is inconsistent, or it does not match the model. The message names the file, the field and what was expected.
/// </summary>
public sealed class ModelFormatException : IOException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="filePath">The file that was being read, or <see langword="null"/> for a stream.</param>
    /// <param name="field">The part of the file at fault (for example a tensor name or <c>header length</c>).</param>
    /// <param name="problem">What was wrong and what was expected.</param>
    /// <param name="innerException">The underlying error, if any.</param>
    public ModelFormatException(string? filePath, string? field, string problem, Exception? innerException = null)
        : base(Compose(filePath, field, problem), innerException)
    {
        FilePath = filePath;
        Field = field;
        Problem = problem;
    }

    /// <summary>The file that was being read, if known.</summary>
    public string? FilePath { get; }

    /// <summary>The part of the file at fault, if any.</summary>
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
