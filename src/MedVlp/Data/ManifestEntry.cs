namespace MedVlp.Data;

/// <summary>One training or evaluation example listed in a <see cref="Manifest"/>.</summary>
public sealed record ManifestEntry
{
    /// <summary>A unique identifier (the manifest's <c>id</c>, or the 1-based row number when there is none).</summary>
    public required string Id { get; init; }

    /// <summary>The volume file or DICOM series folder, made absolute against the manifest's folder.</summary>
    public required string Path { get; init; }

    /// <summary>The report text (empty when the manifest has none).</summary>
    public string Report { get; init; } = "";

    /// <summary>The split, such as <c>train</c>, <c>val</c> or <c>test</c> (empty when not given).</summary>
    public string Split { get; init; } = "";

    /// <summary>Labels by name (the manifest's further columns, or its <c>labels</c> object), as text.</summary>
    public IReadOnlyDictionary<string, string> Labels { get; init; } = new Dictionary<string, string>();

    /// <summary>The 1-based line of the manifest the entry starts on, for error messages.</summary>
    public int Line { get; init; }
}
