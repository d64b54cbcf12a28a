using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace MedVlp.Volumes.Transforms;

/// <summary>
/// An ordered list of transforms applied one after another, with a name, that serialises to and from versioned JSON so a
/// model package can store exactly the preprocessing its training used.
/// </summary>
/// <remarks>
/// <para>JSON layout (version 1):
/// <c>{"format": "medvlp.transform_pipeline", "version": 1, "name": "colipri", "transforms": [{"type": "reorient", "codes": "SAR"}, ...]}</c>.
/// Every transform object has a <c>"type"</c> from <see cref="TransformRegistry"/> and its options in snake_case; missing
/// options take their defaults; unknown types or options are errors.</para>
/// <para>A pipeline is immutable and thread-safe. Random transforms (augmentations) draw from one <see cref="Random"/>
/// per application, seeded by the caller, so results are reproducible.</para>
/// </remarks>
public sealed class TransformPipeline
{
    /// <summary>The value of the JSON <c>"format"</c> field.</summary>
    public const string FormatName = "medvlp.transform_pipeline";

    /// <summary>The JSON layout version this library writes and the newest it reads.</summary>
    public const int CurrentVersion = 1;

    private readonly VolumeTransform[] _transforms;

    /// <summary>Creates a pipeline.</summary>
    /// <param name="transforms">The steps, applied in order.</param>
    /// <param name="name">A name for the pipeline (for example a preset name), or <see langword="null"/>.</param>
    /// <exception cref="ArgumentException">A transform has invalid options.</exception>
    public TransformPipeline(IEnumerable<VolumeTransform> transforms, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(transforms);
        _transforms = [.. transforms];
        for (var n = 0; n < _transforms.Length; n++)
        {
            if (_transforms[n] is null)
            {
                throw new ArgumentException($"Transform {n} of the pipeline is null.", nameof(transforms));
            }

            _transforms[n].Validate();
        }

        Name = name;
    }

    /// <summary>The file the pipeline was loaded from, if any (named in errors).</summary>
    public string? SourcePath { get; private init; }

    /// <summary>The pipeline's name, if any.</summary>
    public string? Name { get; }

    /// <summary>The steps, in order.</summary>
    public IReadOnlyList<VolumeTransform> Transforms => _transforms;

    /// <summary>True when any step is random (an augmentation).</summary>
    public bool IsRandom => _transforms.Any(t => t.IsRandom);

    /// <summary>
    /// The number of leading deterministic steps: the part of the pipeline whose result can be cached and reused
    /// across epochs.
    /// </summary>
    public int DeterministicPrefixLength
    {
        get
        {
            var n = 0;
            while (n < _transforms.Length && !_transforms[n].IsRandom)
            {
                n++;
            }

            return n;
        }
    }

    /// <summary>Applies every step; throws if a step is random (use an overload with a seed).</summary>
    public Volume Apply(Volume volume) => Apply(volume, (Random?)null);

    /// <summary>Applies every step, random ones drawing from a generator seeded with <paramref name="seed"/>.</summary>
    public Volume Apply(Volume volume, int seed) => Apply(volume, new Random(seed));

    /// <summary>Applies every step, random ones drawing from <paramref name="random"/> in order.</summary>
    /// <param name="volume">The input volume (not modified).</param>
    /// <param name="random">The generator for random steps; may be null when there are none.</param>
    /// <param name="cancellationToken">Checked between steps.</param>
    public Volume Apply(Volume volume, Random? random, CancellationToken cancellationToken = default) =>
        ApplyRange(volume, 0, _transforms.Length, random, cancellationToken);

    /// <summary>Applies steps <paramref name="start"/> .. <paramref name="start"/> + <paramref name="count"/> - 1.</summary>
    /// <exception cref="VolumeFormatException">A step cannot process this volume: its output would exceed
    /// <see cref="ResourceLimits.MaxPreprocessedVoxels"/>, overflows, or the volume's geometry does not suit the step. The
    /// message names the volume's file, the step and the pipeline's file.</exception>
    public Volume ApplyRange(Volume volume, int start, int count, Random? random, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(volume);
        ArgumentOutOfRangeException.ThrowIfNegative(start);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(start + count, _transforms.Length, nameof(count));
        for (var n = start; n < start + count; n++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            try
            {
                volume = _transforms[n].Apply(volume, random);
            }
            catch (Exception ex) when (ex is VolumeFormatException or ArgumentException or OverflowException && ex is not ArgumentNullException)
            {
                // Name the volume, the step and the pipeline file: a limit or an overflow is otherwise a riddle.
                var type = _transforms[n].GetType();
                var step = $"preprocessing step {n} ({(TransformRegistry.IsRegistered(type) ? TransformRegistry.NameOf(type) : type.Name)}{(SourcePath is null ? "" : " in " + SourcePath)})";
                var problem = ex is VolumeFormatException v ? v.Problem : ex is OverflowException ? $"the output size overflows ({ex.Message})" : ex.Message;
                throw new VolumeFormatException(volume.Metadata.SourcePath, step, problem, ex);
            }
        }

        return volume;
    }

    /// <summary>A new pipeline with <paramref name="more"/> appended.</summary>
    public TransformPipeline Then(params VolumeTransform[] more) => new([.. _transforms, .. more ?? []], Name);

    /// <summary>Writes the pipeline as JSON (indented).</summary>
    public string ToJson()
    {
        var root = new JsonObject
        {
            ["format"] = FormatName,
            ["version"] = CurrentVersion,
            ["name"] = Name,
            ["transforms"] = JsonSerializer.SerializeToNode(_transforms, TransformRegistry.SerializerOptions),
        };
        return root.ToJsonString(TransformRegistry.SerializerOptions);
    }

    /// <summary>A SHA-256 (hex) of the JSON of the first <paramref name="count"/> steps: it changes whenever their options do.</summary>
    public string Fingerprint(int? count = null)
    {
        var steps = _transforms.Take(count ?? _transforms.Length).ToArray();
        var json = JsonSerializer.Serialize(steps, TransformRegistry.SerializerOptions);
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes($"{FormatName}/{CurrentVersion}\n{json}")));
    }

    /// <summary>Reads a pipeline written by <see cref="ToJson"/>.</summary>
    /// <exception cref="VolumeFormatException">The JSON is not a pipeline, is of a newer version, names an unknown transform or
    /// option, or has an invalid option value; <see cref="VolumeFormatException.Field"/> says where (for example
    /// <c>transforms[2]</c>) and the message what was expected.</exception>
    public static TransformPipeline FromJson(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        return FromJson(json, null);
    }

    private static TransformPipeline FromJson(string json, string? path)
    {
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(json);
        }
        catch (JsonException ex)
        {
            throw new VolumeFormatException(path, "JSON", $"not valid JSON: {ex.Message}", ex);
        }

        if (root is not JsonObject obj)
        {
            throw new VolumeFormatException(path, null, "a transform pipeline must be a JSON object with \"format\", \"version\" and \"transforms\".");
        }

        var format = obj["format"] is JsonValue f && f.TryGetValue<string>(out var fs) ? fs : null;
        if (format != FormatName)
        {
            throw new VolumeFormatException(path, "format", $"must be \"{FormatName}\", got {(format is null ? "nothing" : $"\"{format}\"")}.");
        }

        if (obj["version"] is not JsonValue v || !v.TryGetValue<int>(out var version))
        {
            throw new VolumeFormatException(path, "version", obj["version"] is null ? "is missing; expected 1." : "must be an integer.");
        }

        if (version < 1 || version > CurrentVersion)
        {
            throw new VolumeFormatException(path, "version", $"{version} is not supported; this MedVlp reads versions 1..{CurrentVersion}. Update MedVlp.");
        }

        foreach (var key in obj.Select(p => p.Key))
        {
            if (key is not ("format" or "version" or "name" or "transforms"))
            {
                throw new VolumeFormatException(path, key, "is not a field of a transform pipeline (expected format, version, name, transforms).");
            }
        }

        string? name = null;
        if (obj["name"] is { } nameNode && (nameNode is not JsonValue nv || !nv.TryGetValue(out name)))
        {
            throw new VolumeFormatException(path, "name", "must be a string.");
        }

        if (obj["transforms"] is not JsonArray steps)
        {
            throw new VolumeFormatException(path, "transforms", "must be an array of transform objects.");
        }

        var transforms = new List<VolumeTransform>();
        for (var n = 0; n < steps.Count; n++)
        {
            var type = (steps[n] as JsonObject)?["type"] is JsonValue tv && tv.TryGetValue<string>(out var ts) ? ts : "?";
            try
            {
                var step = steps[n]?.Deserialize<VolumeTransform>(TransformRegistry.SerializerOptions)
                    ?? throw new ArgumentException("null is not a transform.");
                step.Validate();
                transforms.Add(step);
            }
            catch (Exception ex) when (ex is JsonException or NotSupportedException or ArgumentException or InvalidOperationException or FormatException or OverflowException)
            {
                var known = TransformRegistry.Names.Contains(type, StringComparer.Ordinal) ? "" : $" Known types: {string.Join(", ", TransformRegistry.Names)}.";
                throw new VolumeFormatException(path, $"transforms[{n}] (type \"{type}\")", $"is invalid: {ex.Message}{known}", ex);
            }
        }

        return new TransformPipeline(transforms, name) { SourcePath = path };
    }

    /// <summary>The largest pipeline file <see cref="Load"/> reads (1 MiB).</summary>
    public const int MaxFileBytes = 1 << 20;

    /// <summary>Reads a pipeline from a JSON file.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="VolumeFormatException">The file is not a regular file, is larger than <see cref="MaxFileBytes"/>, or is
    /// not a valid pipeline (the message names the file, the field and what was expected).</exception>
    public static TransformPipeline Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string text;
        using (var file = IO.SafeFile.OpenRead(path, 4096))
        {
            if (file.Length > MaxFileBytes)
            {
                throw new VolumeFormatException(path, null, $"the file has {file.Length} bytes; a transform pipeline is expected to be shorter than {MaxFileBytes}.");
            }

            using var reader = new StreamReader(file, Encoding.UTF8);
            text = reader.ReadToEnd();
        }

        return FromJson(text, path);
    }

    /// <summary>Writes the pipeline to a JSON file.</summary>
    public void Save(string path) => File.WriteAllText(path, ToJson());

    /// <inheritdoc />
    public override string ToString() => $"{Name ?? "pipeline"}: {string.Join(" -> ", _transforms.Select(t => TransformRegistry.NameOf(t.GetType())))}";
}
