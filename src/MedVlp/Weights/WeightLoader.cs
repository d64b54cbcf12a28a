using MedVlp.Serialization;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Weights;

/// <summary>Options of <see cref="WeightLoader"/>.</summary>
public sealed class WeightLoadOptions
{
    /// <summary>The source layout's name (see <see cref="WeightLayouts"/>); <see langword="null"/> means the names are MedVlp's already.</summary>
    public string? Layout { get; init; }

    /// <summary>Throw (and change nothing) if any parameter is missing, any source tensor is unexpected or any shape differs. Default true.</summary>
    public bool Strict { get; init; } = true;

    /// <summary>Remove this prefix from source names first (for example <c>model.</c> of a training checkpoint); names without it are unexpected.</summary>
    public string? StripPrefix { get; init; }

    /// <summary>Put this prefix in front of the mapped names (to load a backbone's weights into a bigger model).</summary>
    public string? AddPrefix { get; init; }

    /// <summary>Convert tensors whose dtype differs from the module's (for example F16 weights into an F32 model). Default false: a dtype difference is a mismatch.</summary>
    public bool ConvertDType { get; init; }
}

/// <summary>A source tensor whose shape or dtype does not fit the module's tensor of the same name.</summary>
/// <param name="Name">The MedVlp name.</param>
/// <param name="SourceName">The name in the file.</param>
/// <param name="Expected">The module's shape and dtype.</param>
/// <param name="Found">The file's shape and dtype (after any transpose).</param>
public sealed record WeightMismatch(string Name, string SourceName, string Expected, string Found);

/// <summary>What a load did: tensors copied, the module's tensors no source provided, source tensors the module has no
/// place for, source tensors the layout ignores, and shape or dtype mismatches.</summary>
public sealed record WeightLoadReport(
    IReadOnlyList<string> Loaded,
    IReadOnlyList<string> Missing,
    IReadOnlyList<string> Unexpected,
    IReadOnlyList<string> Ignored,
    IReadOnlyList<WeightMismatch> Mismatched)
{
    /// <summary>True when every module tensor was loaded and nothing was unexpected or mismatched.</summary>
    public bool IsComplete => Missing.Count == 0 && Unexpected.Count == 0 && Mismatched.Count == 0;

    /// <summary>A few lines for logs and exceptions.</summary>
    public string Describe(int maxNames = 8)
    {
        static string List(IReadOnlyList<string> names, int max) =>
            names.Count == 0 ? "none" : string.Join(", ", names.Take(max)) + (names.Count > max ? $" ... ({names.Count} in all)" : "");
        return $"loaded {Loaded.Count}; missing {Missing.Count}: {List(Missing, maxNames)}; unexpected {Unexpected.Count}: {List(Unexpected, maxNames)}; " +
            $"mismatched {Mismatched.Count}: {List(Mismatched.Select(m => $"{m.SourceName} -> {m.Name} expected {m.Expected}, found {m.Found}").ToList(), maxNames)}; ignored {Ignored.Count}";
    }
}

/// <summary>
/// Loads released weights into a TorchSharp module by name through a layout table: prefix strip, renames, transposes,
/// prefix add, then shape and dtype checks against the module's state dict. Strict loads change nothing unless everything fits.
/// </summary>
public static class WeightLoader
{
    /// <summary>Loads <paramref name="path"/> (any <see cref="WeightFile"/> format) into <paramref name="module"/>.</summary>
    /// <exception cref="ModelFormatException">Strict mode and the file does not fit the module; the message lists what is wrong.</exception>
    public static WeightLoadReport Load(nn.Module module, string path, WeightLoadOptions? options = null)
    {
        var source = WeightFile.Load(path);
        try
        {
            return Load(module, source, options, path);
        }
        finally
        {
            foreach (var t in source.Values)
            {
                t.Dispose();
            }
        }
    }

    /// <summary>Loads named tensors into <paramref name="module"/>.</summary>
    /// <param name="module">The module; its parameters and buffers are overwritten in place.</param>
    /// <param name="source">Tensors by their names in the source layout; not disposed.</param>
    /// <param name="options">Layout, strictness, prefixes, dtype conversion.</param>
    /// <param name="sourcePath">Named in exceptions.</param>
    public static WeightLoadReport Load(nn.Module module, IReadOnlyDictionary<string, Tensor> source, WeightLoadOptions? options = null, string? sourcePath = null)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(source);
        options ??= new WeightLoadOptions();
        var layout = options.Layout is null ? null : WeightLayouts.Get(options.Layout);
        var targets = module.state_dict();
        var plan = new List<(string Name, Tensor Source, bool Transpose, Tensor Target)>();
        var unexpected = new List<string>();
        var ignored = new List<string>();
        var mismatched = new List<WeightMismatch>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (sourceName, tensor) in source.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            var name = sourceName;
            if (!string.IsNullOrEmpty(options.StripPrefix))
            {
                if (!name.StartsWith(options.StripPrefix, StringComparison.Ordinal))
                {
                    unexpected.Add(sourceName);
                    continue;
                }

                name = name[options.StripPrefix.Length..];
            }

            if (layout is not null && layout.IsIgnored(name))
            {
                ignored.Add(sourceName);
                continue;
            }

            name = layout?.Map(name) ?? name;
            var transpose = layout?.IsTransposed(name) ?? false;
            name = (options.AddPrefix ?? "") + name;
            if (!targets.TryGetValue(name, out var target))
            {
                unexpected.Add(sourceName);
                continue;
            }

            if (!seen.Add(name))
            {
                throw new ModelFormatException(sourcePath, sourceName, $"a second source tensor maps to {name}.");
            }

            var shape = tensor.shape.ToArray();
            if (transpose)
            {
                if (shape.Length != 2)
                {
                    mismatched.Add(new WeightMismatch(name, sourceName, Describe(target.shape, target.dtype), $"{Describe(shape, tensor.dtype)} (a stored-transposed weight must be 2-D)"));
                    continue;
                }

                (shape[0], shape[1]) = (shape[1], shape[0]);
            }

            if (!shape.SequenceEqual(target.shape) || (tensor.dtype != target.dtype && !options.ConvertDType))
            {
                mismatched.Add(new WeightMismatch(name, sourceName, Describe(target.shape, target.dtype), Describe(shape, tensor.dtype)));
                continue;
            }

            plan.Add((name, tensor, transpose, target));
        }

        var missing = targets.Keys.Where(k => !seen.Contains(k)).OrderBy(k => k, StringComparer.Ordinal).ToList();
        var report = new WeightLoadReport(plan.Select(p => p.Name).ToList(), missing, unexpected, ignored, mismatched);
        if (options.Strict && !report.IsComplete)
        {
            throw new ModelFormatException(sourcePath, layout?.Name ?? "state dict", $"the weights do not fit {module.GetName()} (strict load; nothing was changed): {report.Describe()}.{LayoutHint(source.Keys, options)}");
        }

        using (no_grad())
        {
            foreach (var (_, src, transpose, target) in plan)
            {
                using var scope = NewDisposeScope();
                var value = transpose ? src.t() : src;
                target.copy_(value);
            }
        }

        return report;
    }

    /// <summary>When the names look like another layout (or like one under a prefix), says which options would read them.</summary>
    private static string LayoutHint(IEnumerable<string> sourceNames, WeightLoadOptions options)
    {
        var strip = options.StripPrefix ?? "";
        var names = sourceNames.Where(n => n.StartsWith(strip, StringComparison.Ordinal)).Select(n => n[strip.Length..]).ToList();
        var used = options.Layout is null ? "MedVlp's own names (no layout)" : $"layout {options.Layout}";

        // A training checkpoint or a DataParallel wrapper: every name starts with one segment ("model.", "module.").
        var first = names.Select(n => n.IndexOf('.', StringComparison.Ordinal) is var dot and > 0 ? n[..(dot + 1)] : "").Distinct(StringComparer.Ordinal).ToList();
        if (first.Count == 1 && first[0].Length > 0)
        {
            var under = Matching(names.Select(n => n[first[0].Length..]));
            if (under.Count > 0)
            {
                return $" Under the common prefix \"{first[0]}\" the names match layout {string.Join(" / ", under)}: add StripPrefix = \"{strip}{first[0]}\".";
            }
        }

        var matching = Matching(names);
        return matching.Count == 0 || matching.Contains(options.Layout ?? "", StringComparer.OrdinalIgnoreCase)
            ? ""
            : $" The file's tensor names match layout {string.Join(" / ", matching)}; this load used {used}.";

        static List<string> Matching(IEnumerable<string> names)
        {
            var list = names.ToList();
            return WeightLayouts.All.Where(l => l.Matches(list)).Select(l => l.Name).ToList();
        }
    }

    private static string Describe(long[] shape, ScalarType dtype) => $"[{string.Join(", ", shape)}] {dtype}";
}
