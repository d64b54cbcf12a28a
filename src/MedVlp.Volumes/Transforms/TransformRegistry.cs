using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;

namespace MedVlp.Volumes.Transforms;

/// <summary>
/// The <c>"type"</c> names under which transforms are written to JSON, and the serializer options a
/// <see cref="TransformPipeline"/> uses. Built-in transforms are registered; register your own subclasses of
/// <see cref="VolumeTransform"/> before reading a pipeline that uses them.
/// </summary>
public static class TransformRegistry
{
    private static readonly ConcurrentDictionary<string, Type> ByName = new(StringComparer.Ordinal);
    private static readonly ConcurrentDictionary<Type, string> ByType = new();
    private static JsonSerializerOptions? _options;

    static TransformRegistry()
    {
        // spatial
        Add<Reorient>("reorient");
        Add<ResampleToSpacing>("resample_to_spacing");
        Add<ResampleToShape>("resample_to_shape");
        Add<ResizeLongestSide>("resize_longest_side");
        Add<CropOrPad>("crop_or_pad");
        Add<SpatialCrop>("spatial_crop");
        Add<CropForeground>("crop_foreground");
        Add<Flip>("flip");
        Add<Rotate90>("rotate90");
        Add<ExtractSlice>("extract_slice");
        Add<RepeatChannels>("repeat_channels");

        // intensity
        Add<MinMaxNormalize>("min_max");
        Add<Clamp>("clamp");
        Add<ScaleIntensityRange>("scale_intensity_range");
        Add<ZScoreNormalize>("z_score");
        Add<PercentileClip>("percentile_clip");
        Add<GaussianBlur>("gaussian_blur");

        // augmentation
        Add<RandomFlip>("random_flip");
        Add<RandomRotate90>("random_rotate90");
        Add<RandomAffine>("random_affine");
        Add<RandomIntensityShift>("random_intensity_shift");
        Add<RandomIntensityScale>("random_intensity_scale");
        Add<RandomGamma>("random_gamma");
        Add<RandomGaussianNoise>("random_gaussian_noise");
        Add<RandomGaussianBlur>("random_gaussian_blur");
        Add<RandomCrop>("random_crop");
    }

    /// <summary>The registered type names, sorted.</summary>
    public static IReadOnlyList<string> Names => [.. ByName.Keys.Order(StringComparer.Ordinal)];

    /// <summary>
    /// Registers a transform type under a JSON <c>"type"</c> name. Its public settable properties are its options (written
    /// in snake_case). Register before the first pipeline is read or written.
    /// </summary>
    /// <typeparam name="T">The transform type; it needs a public parameterless constructor.</typeparam>
    /// <param name="name">A unique name such as <c>"my_denoise"</c>.</param>
    /// <exception cref="ArgumentException">The name or type is already registered.</exception>
    /// <exception cref="InvalidOperationException">Pipelines have already been serialised with the current registry.</exception>
    public static void Register<T>(string name)
        where T : VolumeTransform, new()
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        if (_options is not null)
        {
            throw new InvalidOperationException("Register transform types before the first pipeline is read or written.");
        }

        Add<T>(name);
    }

    /// <summary>True when <paramref name="type"/> is registered.</summary>
    public static bool IsRegistered(Type type) => type is not null && ByType.ContainsKey(type);

    /// <summary>The type name of a registered transform type.</summary>
    /// <exception cref="KeyNotFoundException">The type is not registered.</exception>
    public static string NameOf(Type type)
    {
        ArgumentNullException.ThrowIfNull(type);
        return ByType.TryGetValue(type, out var name) ? name : throw new KeyNotFoundException($"{type.Name} is not a registered transform type; call TransformRegistry.Register.");
    }

    /// <summary>The JSON options pipelines are written and read with (snake_case names, enums as strings, polymorphic transforms).</summary>
    public static JsonSerializerOptions SerializerOptions => _options ??= CreateOptions();

    private static void Add<T>(string name)
        where T : VolumeTransform
    {
        if (!ByName.TryAdd(name, typeof(T)))
        {
            throw new ArgumentException($"The transform type name \"{name}\" is already registered.", nameof(name));
        }

        if (!ByType.TryAdd(typeof(T), name))
        {
            ByName.TryRemove(name, out _);
            throw new ArgumentException($"{typeof(T).Name} is already registered.", nameof(name));
        }
    }

    private static JsonSerializerOptions CreateOptions()
    {
        var resolver = new DefaultJsonTypeInfoResolver();
        resolver.Modifiers.Add(info =>
        {
            if (info.Type != typeof(VolumeTransform))
            {
                return;
            }

            info.PolymorphismOptions = new JsonPolymorphismOptions
            {
                TypeDiscriminatorPropertyName = "type",
                UnknownDerivedTypeHandling = JsonUnknownDerivedTypeHandling.FailSerialization,
                IgnoreUnrecognizedTypeDiscriminators = false,
            };
            foreach (var (name, type) in ByName.OrderBy(p => p.Key, StringComparer.Ordinal))
            {
                info.PolymorphismOptions.DerivedTypes.Add(new JsonDerivedType(type, name));
            }
        });
        var options = new JsonSerializerOptions
        {
            TypeInfoResolver = resolver,
            PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
            WriteIndented = true,
            UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
            RespectNullableAnnotations = true,
            NumberHandling = JsonNumberHandling.Strict,
        };
        options.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower, allowIntegerValues: false));
        options.MakeReadOnly(populateMissingResolver: false);
        return options;
    }
}
