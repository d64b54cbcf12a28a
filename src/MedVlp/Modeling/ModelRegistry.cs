using System.Diagnostics.CodeAnalysis;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Modeling;

/// <summary>One registered architecture: its name, configuration record, named sizes and how to build it.</summary>
/// <param name="Name">The registry name (the <c>type</c> of its configuration JSON, the <c>architecture</c> of a package).</param>
/// <param name="ConfigType">The configuration record (derived from <see cref="ArchitectureConfig"/>).</param>
/// <param name="Description">One line for <c>medvlp model list</c>.</param>
/// <param name="Sizes">Named sizes (at least <c>tiny</c> and <c>full</c>) and their configurations.</param>
/// <param name="Build">Builds the model with fresh weights on a device (<c>meta</c>: without memory).</param>
public sealed record ModelArchitecture(
    string Name,
    Type ConfigType,
    string Description,
    IReadOnlyDictionary<string, Func<ArchitectureConfig>> Sizes,
    Func<ArchitectureConfig, Device?, CompositeModel> Build);

/// <summary>Options of <see cref="ModelRegistry.Create(string, string, ModelCreateOptions?)"/>.</summary>
public sealed record ModelCreateOptions
{
    /// <summary>Where the weights live (CPU when null; <c>meta</c> builds the structure without memory).</summary>
    public Device? Device { get; init; }

    /// <summary>Seed of the weight initialisation (the same seed gives the same weights on the CPU). Default 42.</summary>
    public int Seed { get; init; } = 42;

    /// <summary>Components to freeze after building. An empty policy keeps what the architecture freezes itself (MedBLIP:
    /// its language model); unfreeze those with <see cref="CompositeModel.Unfreeze"/>.</summary>
    public FreezePolicy Freeze { get; init; } = FreezePolicy.None;
}

/// <summary>
/// The architectures MedVlp can build by name, as open_clip's <c>create_model</c>: <c>ModelRegistry.Create("clip3d",
/// "tiny")</c>. Register your own with <see cref="Register"/>; model packages name their architecture and
/// <see cref="VisionLanguageModel.Load(string, Packaging.ModelLoadOptions?)"/> builds it through this registry. Thread-safe.
/// The registry itself knows only <c>clip3d</c> (built from this layer's parts); each paper's architecture registers itself
/// from its own folder (<c>Architectures/*/…Architecture.cs</c>) when the assembly loads, so no arrow runs from this layer
/// to the papers'.
/// </summary>
public static class ModelRegistry
{
    /// <summary>The size for CPU tests and demos.</summary>
    public const string Tiny = "tiny";

    /// <summary>The paper's size.</summary>
    public const string Full = "full";

    private static readonly Lock Gate = new();
    private static readonly Lock InitializationLock = new();
    private static readonly Dictionary<string, ModelArchitecture> Architectures = new(StringComparer.Ordinal)
    {
        [Clip3dConfig.ArchitectureName] = new ModelArchitecture(
            Clip3dConfig.ArchitectureName,
            typeof(Clip3dConfig),
            "CLIP-style dual encoder: 3D ViT (Conv3d patches, attention pooling) + BERT, projections, learned logit scale",
            new Dictionary<string, Func<ArchitectureConfig>> { [Tiny] = () => Clip3dConfig.Tiny(), [Full] = () => Clip3dConfig.Full() },
            (config, device) => new DualEncoderModel((Clip3dConfig)config, device)),
    };

    /// <summary>The registered architecture names, sorted.</summary>
    public static IReadOnlyList<string> Names
    {
        get
        {
            lock (Gate)
            {
                return [.. Architectures.Keys.Order(StringComparer.Ordinal)];
            }
        }
    }

    /// <summary>Registers an architecture (or replaces one of the same name).</summary>
    /// <exception cref="ArgumentException">The name is empty, the config type is not an <see cref="ArchitectureConfig"/>, or
    /// a size's configuration is of another type or names another architecture.</exception>
    public static void Register(ModelArchitecture architecture)
    {
        ArgumentNullException.ThrowIfNull(architecture);
        ArgumentException.ThrowIfNullOrWhiteSpace(architecture.Name);
        ArgumentNullException.ThrowIfNull(architecture.Build);
        if (!typeof(ArchitectureConfig).IsAssignableFrom(architecture.ConfigType) || architecture.ConfigType.IsAbstract)
        {
            throw new ArgumentException($"{architecture.ConfigType} is not a concrete record derived from ArchitectureConfig.", nameof(architecture));
        }

        if (architecture.Sizes is null || !architecture.Sizes.ContainsKey(Tiny) || !architecture.Sizes.ContainsKey(Full))
        {
            throw new ArgumentException($"Architecture \"{architecture.Name}\" needs at least the sizes \"{Tiny}\" and \"{Full}\".", nameof(architecture));
        }

        foreach (var (size, make) in architecture.Sizes)
        {
            var config = make();
            if (config.GetType() != architecture.ConfigType || config.Architecture != architecture.Name)
            {
                throw new ArgumentException($"Size \"{size}\" of \"{architecture.Name}\" makes a {config.GetType().Name} for \"{config.Architecture}\".", nameof(architecture));
            }
        }

        lock (Gate)
        {
            Architectures[architecture.Name] = architecture;
        }
    }

    /// <summary>Registers an architecture from its parts.</summary>
    public static void Register<TConfig>(string name, string description, Func<TConfig> tiny, Func<TConfig> full, Func<TConfig, Device?, CompositeModel> build)
        where TConfig : ArchitectureConfig
    {
        ArgumentNullException.ThrowIfNull(tiny);
        ArgumentNullException.ThrowIfNull(full);
        ArgumentNullException.ThrowIfNull(build);
        Register(new ModelArchitecture(name, typeof(TConfig), description, new Dictionary<string, Func<ArchitectureConfig>> { [Tiny] = tiny, [Full] = full },
            (config, device) => build((TConfig)config, device)));
    }

    /// <summary>The registered architecture <paramref name="name"/>.</summary>
    /// <exception cref="KeyNotFoundException">No such architecture (the message lists the registered ones).</exception>
    public static ModelArchitecture Get(string name) =>
        TryGet(name, out var a) ? a : throw new KeyNotFoundException($"No architecture \"{name}\" is registered; known: {string.Join(", ", Names)}.");

    /// <summary>Looks an architecture up.</summary>
    public static bool TryGet(string name, [NotNullWhen(true)] out ModelArchitecture? architecture)
    {
        ArgumentNullException.ThrowIfNull(name);
        lock (Gate)
        {
            return Architectures.TryGetValue(name, out architecture);
        }
    }

    /// <summary>The configuration of a named size.</summary>
    /// <exception cref="KeyNotFoundException">Unknown architecture or size.</exception>
    public static ArchitectureConfig Config(string name, string size = Tiny)
    {
        var a = Get(name);
        return a.Sizes.TryGetValue(size, out var make) ? make()
            : throw new KeyNotFoundException($"Architecture \"{name}\" has no size \"{size}\"; it has {string.Join(", ", a.Sizes.Keys)}.");
    }

    /// <summary>Builds the architecture <paramref name="name"/> at <paramref name="size"/> with fresh weights.</summary>
    public static CompositeModel Create(string name, string size = Tiny, ModelCreateOptions? options = null) => Create(Config(name, size), options);

    /// <summary>Builds the model a configuration describes (its <see cref="ArchitectureConfig.Architecture"/> selects the builder).</summary>
    /// <exception cref="ArgumentException">The configuration is invalid (the parameter name is the field).</exception>
    public static CompositeModel Create(ArchitectureConfig config, ModelCreateOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        options ??= new ModelCreateOptions();
        var architecture = Get(config.Architecture);
        if (config.GetType() != architecture.ConfigType)
        {
            throw new ArgumentException($"Architecture \"{architecture.Name}\" is configured by {architecture.ConfigType.Name}, not {config.GetType().Name}.", nameof(config));
        }

        config.Validate();
        var device = options.Device ?? CPU;
        CompositeModel model;
        if (device.type == DeviceType.META)
        {
            model = architecture.Build(config, device);
        }
        else
        {
            // libtorch's default generator is process-wide: hold it while seeding and initialising, so that concurrent
            // Create calls cannot interleave their draws. (Other code drawing from it at the same time still can.)
            lock (InitializationLock)
            {
                random.manual_seed(options.Seed);
                model = architecture.Build(config, null);
            }

            if (device.type != DeviceType.CPU)
            {
                model.to(device);
            }
        }

        if (options.Freeze.FrozenComponents.Count > 0)
        {
            model.Apply(options.Freeze);
        }

        model.eval();
        return model;
    }
}
