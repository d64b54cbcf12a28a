using System.Collections.ObjectModel;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;

namespace MedVlp.Weights;

/// <summary>
/// How the tensor names of one released-checkpoint layout map onto MedVlp's names: an ordered list of regular-expression
/// renames, names to ignore (buffers and heads MedVlp does not use) and names whose 2-D weight is stored transposed
/// (Hugging Face GPT-2's <c>Conv1D</c>). The tables are data (JSON resources under <c>Weights/Layouts</c>), one per layout;
/// <see cref="WeightLayouts"/> lists them.
/// </summary>
public sealed class WeightLayout
{
    private readonly (Regex From, string To)[] _renames;
    private readonly Regex[] _ignore;
    private readonly Regex[] _transpose;
    private readonly Regex[] _signature;

    private WeightLayout(LayoutTable table)
    {
        Name = table.Name ?? throw new InvalidDataException("A layout table has no name.");
        Description = table.Description ?? "";
        Target = table.Target ?? "";
        _renames = (table.Rename ?? []).Select(r => (Compile(r.From), r.To ?? "")).ToArray();
        _ignore = (table.Ignore ?? []).Select(Compile).ToArray();
        _transpose = (table.Transpose ?? []).Select(Compile).ToArray();
        _signature = (table.Signature ?? []).Select(Compile).ToArray();
    }

    /// <summary>The layout's name (for example <c>hf-bert</c>).</summary>
    public string Name { get; }

    /// <summary>What checkpoints it reads.</summary>
    public string Description { get; }

    /// <summary>The MedVlp module whose names it produces.</summary>
    public string Target { get; }

    /// <summary>Whether a source tensor is one MedVlp does not use (a buffer, a pre-training head).</summary>
    public bool IsIgnored(string sourceName) => _ignore.Any(r => r.IsMatch(sourceName));

    /// <summary>The MedVlp name of a source tensor (all renames applied in order).</summary>
    public string Map(string sourceName)
    {
        ArgumentNullException.ThrowIfNull(sourceName);
        var name = sourceName;
        foreach (var (from, to) in _renames)
        {
            name = from.Replace(name, to, 1);
        }

        return name;
    }

    /// <summary>Whether the tensor with MedVlp name <paramref name="targetName"/> is stored transposed ([in, out]).</summary>
    public bool IsTransposed(string targetName) => _transpose.Any(r => r.IsMatch(targetName));

    /// <summary>
    /// Renames a source state dict into MedVlp's names: ignored tensors are left out (and listed in
    /// <paramref name="ignored"/>), stored-transposed weights are transposed. The result holds new tensors (the caller
    /// disposes them); the source is not changed.
    /// </summary>
    /// <exception cref="InvalidDataException">Two source tensors map to one name, or a transposed weight is not 2-D.</exception>
    public Dictionary<string, TorchSharp.torch.Tensor> Apply(IReadOnlyDictionary<string, TorchSharp.torch.Tensor> source, out IReadOnlyList<string> ignored)
    {
        ArgumentNullException.ThrowIfNull(source);
        var result = new Dictionary<string, TorchSharp.torch.Tensor>(StringComparer.Ordinal);
        var dropped = new List<string>();
        foreach (var (name, tensor) in source.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            if (IsIgnored(name))
            {
                dropped.Add(name);
                continue;
            }

            var target = Map(name);
            var transpose = IsTransposed(target);
            if (transpose && tensor.ndim != 2)
            {
                throw new InvalidDataException($"{Name}: {name} is stored transposed and must be 2-D, found [{string.Join(", ", tensor.shape)}].");
            }

            if (result.ContainsKey(target))
            {
                throw new InvalidDataException($"{Name}: {name} maps to {target}, which another tensor already maps to.");
            }

            result[target] = transpose ? tensor.t().contiguous() : tensor.alias();
        }

        ignored = dropped;
        return result;
    }

    /// <summary>Whether a set of source names looks like this layout (every signature pattern matches some name).</summary>
    public bool Matches(IEnumerable<string> sourceNames)
    {
        ArgumentNullException.ThrowIfNull(sourceNames);
        var names = sourceNames as ICollection<string> ?? sourceNames.ToList();
        return _signature.Length > 0 && _signature.All(r => names.Any(r.IsMatch));
    }

    internal static WeightLayout Parse(Stream json, string source)
    {
        try
        {
            var table = JsonSerializer.Deserialize(json, LayoutJsonContext.Default.LayoutTable) ?? throw new InvalidDataException($"{source}: empty layout table.");
            return new WeightLayout(table);
        }
        catch (Exception ex) when (ex is JsonException or ArgumentException)
        {
            throw new InvalidDataException($"{source}: not a valid layout table ({ex.Message}).", ex);
        }
    }

    private static Regex Compile(string pattern) => new(pattern, RegexOptions.CultureInvariant | RegexOptions.Compiled, TimeSpan.FromSeconds(1));
}

/// <summary>The built-in layout tables.</summary>
public static class WeightLayouts
{
    // Most specific first: detection takes the first layout whose signature matches.
    private static readonly string[] Order =
    [
        "hf-blip2-qformer", "hf-blip2-vision", "lavis-qformer", "lavis-eva-vit", "hf-gpt2", "torchvision-resnet50", "timm-vit", "hf-bert",
    ];

    private static readonly Lazy<ReadOnlyCollection<WeightLayout>> Tables = new(LoadAll);

    /// <summary>Every built-in layout, most specific first.</summary>
    public static IReadOnlyList<WeightLayout> All => Tables.Value;

    /// <summary>The layout called <paramref name="name"/>.</summary>
    /// <exception cref="ArgumentException">No layout has that name.</exception>
    public static WeightLayout Get(string name) =>
        All.FirstOrDefault(l => string.Equals(l.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException($"Unknown weight layout \"{name}\"; known layouts: {string.Join(", ", All.Select(l => l.Name))}.", nameof(name));

    /// <summary>The first layout whose signature matches <paramref name="sourceNames"/>, or <see langword="null"/>.</summary>
    public static WeightLayout? Detect(IEnumerable<string> sourceNames)
    {
        var names = sourceNames.ToList();
        return All.FirstOrDefault(l => l.Matches(names));
    }

    private static ReadOnlyCollection<WeightLayout> LoadAll()
    {
        var assembly = typeof(WeightLayouts).Assembly;
        var layouts = new List<WeightLayout>();
        foreach (var name in Order)
        {
            var resource = $"MedVlp.Weights.Layouts.{name}.json";
            using var stream = assembly.GetManifestResourceStream(resource) ?? throw new InvalidOperationException($"Layout table {resource} is not embedded.");
            layouts.Add(WeightLayout.Parse(stream, resource));
        }

        return layouts.AsReadOnly();
    }
}

internal sealed class LayoutTable
{
    public string? Name { get; set; }

    public string? Description { get; set; }

    public string? Target { get; set; }

    public List<LayoutRename>? Rename { get; set; }

    public List<string>? Ignore { get; set; }

    public List<string>? Transpose { get; set; }

    public List<string>? Signature { get; set; }
}

internal sealed class LayoutRename
{
    public string From { get; set; } = "";

    public string? To { get; set; }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, ReadCommentHandling = JsonCommentHandling.Skip)]
[JsonSerializable(typeof(LayoutTable))]
internal sealed partial class LayoutJsonContext : JsonSerializerContext;
