using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

#pragma warning disable CA2208 // ParamName carries the JSON path of the field at fault (model.type), which Load reports.

namespace MedVlp.Modeling;

/// <summary>
/// The sizes of one registered architecture (<see cref="ModelRegistry"/>). Serialised as JSON with a <c>type</c>
/// discriminator naming the architecture (<c>{"type": "clip3d", ...}</c>) and snake_case fields, so that a model
/// package's <c>config.json</c> says what to build. Derive a record from it for your own architecture.
/// </summary>
public abstract record ArchitectureConfig
{
    /// <summary>The registry name of the architecture (the JSON <c>type</c>).</summary>
    [JsonIgnore]
    public abstract string Architecture { get; }

    /// <summary>
    /// Checks every size against sane bounds (<see cref="ModelLimits"/>) and the others. Throws an
    /// <see cref="ArgumentException"/> whose <see cref="ArgumentException.ParamName"/> is the JSON path of the field
    /// (for example <c>text.num_hidden_layers</c>).
    /// </summary>
    public abstract void Validate();

    /// <summary>
    /// The number of parameters computed from the sizes alone (no module built), or null when the architecture does not
    /// say. Loading refuses a configuration whose estimate exceeds the budget before building anything: TorchSharp
    /// allocates some modules (Embedding) on the CPU even when asked for the <c>meta</c> device.
    /// </summary>
    public virtual long? EstimateParameters() => null;

    /// <summary>The number of token ids the model accepts from the tokenizer <paramref name="tokenizer"/> (a tokenizer with
    /// more tokens than this cannot be used), or null when the architecture does not say.</summary>
    public virtual int? TokenizerVocabularySize(string tokenizer) => null;

    /// <summary>The configuration as JSON, <c>type</c> first.</summary>
    public string ToJson() => ToJsonNode().ToJsonString(ModelJson.Options);

    /// <summary>Reads a configuration written by <see cref="ToJson"/>; the <c>type</c> selects the registered record.</summary>
    /// <exception cref="ArgumentException">The JSON is invalid, lacks <c>type</c>, or names an unregistered architecture
    /// (<see cref="ArgumentException.ParamName"/>: the field).</exception>
    public static ArchitectureConfig FromJson(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(json);
        }
        catch (JsonException ex)
        {
            throw new ArgumentException($"not valid JSON ({ex.Message}).", "model", ex);
        }

        return FromJsonNode(node as JsonObject ?? throw new ArgumentException("expected a JSON object.", "model"), null);
    }

    internal JsonObject ToJsonNode()
    {
        var body = JsonSerializer.SerializeToNode(this, GetType(), ModelJson.Options)!.AsObject();
        var result = new JsonObject { ["type"] = Architecture };
        foreach (var (key, value) in body.ToArray())
        {
            body.Remove(key);
            result[key] = value;
        }

        return result;
    }

    /// <summary>Deserialises <paramref name="node"/> as the config record of its <c>type</c> (or of
    /// <paramref name="architecture"/> when the node has none, as in version-1 packages).</summary>
    internal static ArchitectureConfig FromJsonNode(JsonObject node, string? architecture)
    {
        var type = node["type"] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;
        if (type is not null && architecture is not null && type != architecture)
        {
            throw new ArgumentException($"expected \"{architecture}\" (the package's architecture), found \"{type}\".", "model.type");
        }

        type ??= architecture ?? throw new ArgumentException("the architecture type is missing.", "model.type");
        if (!ModelRegistry.TryGet(type, out var entry))
        {
            throw new ArgumentException($"expected a registered architecture ({string.Join(", ", ModelRegistry.Names)}), found \"{type}\".", "model.type");
        }

        var copy = node.DeepClone().AsObject();
        copy.Remove("type");
        ArchitectureConfig? config;
        try
        {
            config = (ArchitectureConfig?)copy.Deserialize(entry.ConfigType, ModelJson.Options);
        }
        catch (JsonException ex)
        {
            throw new ArgumentException($"not a valid {type} configuration ({ex.Message}).", "model" + (ex.Path is { Length: > 1 } p ? p[1..] : ""), ex);
        }

        return config ?? throw new ArgumentException("the architecture section is null.", "model");
    }
}
