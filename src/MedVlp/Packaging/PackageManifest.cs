using System.Text.Json.Nodes;

namespace MedVlp.Packaging;

/// <summary>The <c>config.json</c> of a model package (versions 1 and 2; see <see cref="VisionLanguageModel"/>).</summary>
internal sealed record PackageManifest
{
    public string? Format { get; init; }

    public int Version { get; init; }

    /// <summary>The registered architecture (version 1 wrote <c>dual_encoder</c>, which is <c>clip3d</c>).</summary>
    public string? Architecture { get; init; }

    /// <summary>The architecture's configuration (version 2: with its <c>type</c>).</summary>
    public JsonObject? Model { get; init; }

    /// <summary>Version 2: the components, which are frozen, and where referenced ones live.</summary>
    public List<ComponentManifest>? Components { get; init; }

    /// <summary>Version 2: tokenizers by name.</summary>
    public Dictionary<string, TokenizerManifest>? Tokenizers { get; init; }

    /// <summary>Version 2: the tokenizer used when none is named.</summary>
    public string? DefaultTokenizer { get; init; }

    /// <summary>Version 1: the only tokenizer.</summary>
    public TokenizerManifest? Tokenizer { get; init; }

    public string? Weights { get; init; }

    public string? Preprocessing { get; init; }

    /// <summary>Version 2: SHA-256 and size of every file of the package (paths relative, with '/').</summary>
    public SortedDictionary<string, FileRecord>? Files { get; init; }
}

/// <summary>One component of a version-2 package.</summary>
internal sealed record ComponentManifest
{
    public string? Name { get; init; }

    public bool Frozen { get; init; }

    public long Parameters { get; init; }

    /// <summary>Null when the weights are in the package's own weights file.</summary>
    public ComponentReference? Reference { get; init; }
}

/// <summary>A component whose weights live in a safetensors file outside the package (keys relative to the component).</summary>
internal sealed record ComponentReference
{
    /// <summary>Relative to the package folder, with '/'.</summary>
    public string? Path { get; init; }

    public string? Sha256 { get; init; }

    public long Size { get; init; }
}

/// <summary>Tokenizer settings in a model package.</summary>
internal sealed record TokenizerManifest
{
    public string? Kind { get; init; }

    public bool LowerCase { get; init; } = true;

    public string? File { get; init; }

    /// <summary>Version 2: the number of vocabulary entries (a cut vocabulary fails to load).</summary>
    public int? VocabularySize { get; init; }
}

/// <summary>Integrity record of one package file.</summary>
internal sealed record FileRecord
{
    public string? Sha256 { get; init; }

    public long Size { get; init; }
}
