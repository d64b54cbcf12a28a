using System.Text.Json;
using System.Text.Json.Nodes;

namespace MedVlp.Architectures.Colipri;

/// <summary>
/// Reads and writes the findings file of zero-shot finding evaluation (<c>medvlp evaluate --findings FILE</c>): a JSON
/// object whose keys are the findings (also the manifest's label names) and whose values list the prompts stating and
/// negating each finding; the prompts of each side are averaged (a prompt ensemble):
/// <code>
/// {
///   "lung_nodule":      { "positive": ["Lung nodules", "Pulmonary nodules"], "negative": ["No lung nodules"] },
///   "pleural_effusion": { "positive": ["Pleural effusion"], "negative": ["No pleural effusion"], "label": "effusion" }
/// }
/// </code>
/// The optional <c>label</c> names the manifest label when it differs from the key.
/// </summary>
public static class FindingPromptsFile
{
    /// <summary>The longest file read (1 MiB).</summary>
    public const long MaxBytes = 1 << 20;

    /// <summary>Reads a findings file.</summary>
    /// <returns>The findings in file order, and the manifest label of each.</returns>
    /// <exception cref="FormatException">The file is not valid JSON or a field is missing or of the wrong kind (the message names the file and the field).</exception>
    public static IReadOnlyList<(FindingPrompts Prompts, string Label)> Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var info = new FileInfo(path);
        if (!info.Exists)
        {
            throw new FileNotFoundException($"{path}: the findings file does not exist.", path);
        }

        if (info.Length > MaxBytes)
        {
            throw new FormatException($"{path}: {info.Length} bytes; a findings file is at most {MaxBytes} bytes.");
        }

        JsonNode? root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(path));
        }
        catch (JsonException ex)
        {
            throw new FormatException($"{path}: not valid JSON ({ex.Message}).", ex);
        }

        if (root is not JsonObject findings || findings.Count == 0)
        {
            throw new FormatException($"{path}: expected a JSON object with at least one finding (\"name\": {{\"positive\": [...], \"negative\": [...]}}).");
        }

        var result = new List<(FindingPrompts, string)>();
        foreach (var (name, value) in findings)
        {
            if (value is not JsonObject entry)
            {
                throw new FormatException($"{path}: finding \"{name}\": expected an object with \"positive\" and \"negative\" prompt lists.");
            }

            foreach (var key in entry.Select(kv => kv.Key))
            {
                if (key is not ("positive" or "negative" or "label"))
                {
                    throw new FormatException($"{path}: finding \"{name}\": unknown field \"{key}\" (expected positive, negative, label).");
                }
            }

            var label = entry["label"] switch
            {
                null => name,
                JsonValue v when v.TryGetValue<string>(out var s) && s.Length > 0 => s,
                _ => throw new FormatException($"{path}: finding \"{name}\".label: expected a non-empty string."),
            };
            result.Add((new FindingPrompts(name, Prompts(path, name, entry, "positive"), Prompts(path, name, entry, "negative")), label));
        }

        return result;
    }

    /// <summary>Writes a findings file (labels equal to the finding names).</summary>
    public static void Save(string path, IEnumerable<FindingPrompts> findings)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(findings);
        var root = new JsonObject();
        foreach (var f in findings)
        {
            root[f.Name] = new JsonObject
            {
                ["positive"] = new JsonArray([.. f.Positive.Select(p => (JsonNode?)JsonValue.Create(p))]),
                ["negative"] = new JsonArray([.. f.Negative.Select(p => (JsonNode?)JsonValue.Create(p))]),
            };
        }

        File.WriteAllText(path, root.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    private static string[] Prompts(string path, string name, JsonObject entry, string side)
    {
        if (entry[side] is not JsonArray array || array.Count == 0)
        {
            throw new FormatException($"{path}: finding \"{name}\".{side}: expected a non-empty list of prompt strings.");
        }

        return [.. array.Select((p, i) => p is JsonValue v && v.TryGetValue<string>(out var s) && !string.IsNullOrWhiteSpace(s)
            ? s
            : throw new FormatException($"{path}: finding \"{name}\".{side}[{i}]: expected a non-empty string."))];
    }
}
