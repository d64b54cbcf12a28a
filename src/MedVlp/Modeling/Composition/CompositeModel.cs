using System.Security.Cryptography;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MedVlp.Modeling;

/// <summary>Parameter counts of a model.</summary>
/// <param name="Total">All parameters.</param>
/// <param name="Trainable">Parameters the optimizer updates.</param>
/// <param name="Frozen">Parameters of frozen components.</param>
public sealed record ParameterCounts(long Total, long Trainable, long Frozen);

/// <summary>Which components of a <see cref="CompositeModel"/> are frozen (by component name, such as <c>text_model</c>).</summary>
/// <param name="FrozenComponents">The names of the components to freeze.</param>
public sealed record FreezePolicy(IReadOnlyList<string> FrozenComponents)
{
    /// <summary>Nothing frozen.</summary>
    public static FreezePolicy None { get; } = new([]);

    /// <summary>Freezes the named components.</summary>
    public static FreezePolicy Of(params string[] components) => new(components);
}

/// <summary>
/// The base of every registered architecture: a TorchSharp module made of named components (its direct submodules and
/// direct parameters, such as <c>vision_model</c>, <c>text_model</c>, <c>logit_scale</c>), any of which can be frozen.
/// </summary>
/// <remarks>
/// <para>Freezing is a policy kept by the model, not a convention: a frozen component's parameters have
/// <c>requires_grad = false</c>, it stays in <c>eval()</c> when the model is put in training mode (dropout off, norms
/// fixed), and <see cref="TrainableParameters"/> (what an optimizer should get) leaves it out. Gradients still flow
/// through a frozen component to whatever trains in front of it, because its activations keep their autograd graph;
/// only a model that knows nothing upstream trains (a frozen text encoder fed with token ids) may run it under
/// <c>no_grad</c>.</para>
/// </remarks>
public abstract class CompositeModel : nn.Module
{
    private readonly HashSet<string> _frozen = new(StringComparer.Ordinal);
    private readonly Lock _fingerprintLock = new();
    private readonly Dictionary<string, string> _fingerprints = new(StringComparer.Ordinal);

    /// <summary>Creates the module.</summary>
    protected CompositeModel(string name)
        : base(name)
    {
    }

    /// <summary>The architecture's configuration (what the registry builds this model from).</summary>
    public abstract ArchitectureConfig Config { get; }

    /// <summary>The components, in registration order: direct submodules, then direct parameters.</summary>
    public IReadOnlyList<string> ComponentNames =>
        [.. named_children().Select(c => c.name), .. named_parameters(recurse: false).Select(p => p.name)];

    /// <summary>The frozen components.</summary>
    public IReadOnlyCollection<string> FrozenComponents => [.. _frozen.Order(StringComparer.Ordinal)];

    /// <summary>Whether <paramref name="component"/> is frozen.</summary>
    public bool IsFrozen(string component) => _frozen.Contains(component);

    /// <summary>
    /// Freezes a component: <c>requires_grad = false</c> on its parameters, <c>eval()</c> now and whenever the model is
    /// trained, excluded from <see cref="TrainableParameters"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The model has no such component.</exception>
    public void Freeze(string component)
    {
        foreach (var p in ParametersOf(component))
        {
            p.requires_grad = false;
        }

        _frozen.Add(component);
        ComponentModule(component)?.eval();
        ClearFingerprints();
    }

    /// <summary>Makes a frozen component trainable again (it follows the model's training mode from then on).</summary>
    public void Unfreeze(string component)
    {
        foreach (var p in ParametersOf(component))
        {
            p.requires_grad = true;
        }

        _frozen.Remove(component);
        ComponentModule(component)?.train(training);
        ClearFingerprints();
    }

    /// <summary>Freezes exactly the components of <paramref name="policy"/> (unfreezing the others).</summary>
    public void Apply(FreezePolicy policy)
    {
        ArgumentNullException.ThrowIfNull(policy);
        foreach (var name in policy.FrozenComponents)
        {
            _ = ParametersOf(name);
        }

        foreach (var name in ComponentNames)
        {
            if (policy.FrozenComponents.Contains(name, StringComparer.Ordinal))
            {
                Freeze(name);
            }
            else if (IsFrozen(name))
            {
                Unfreeze(name);
            }
        }
    }

    /// <summary>The current freeze policy.</summary>
    public FreezePolicy FreezePolicy => new([.. FrozenComponents]);

    /// <summary>Sets training mode on the model, keeping frozen components in evaluation mode.</summary>
    public override void train(bool train = true)
    {
        base.train(train);
        foreach (var name in _frozen)
        {
            ComponentModule(name)?.eval();
        }
    }

    /// <summary>The parameters an optimizer should update: those of unfrozen components that require gradients.</summary>
    public IEnumerable<(string Name, Parameter Parameter)> TrainableParameters() =>
        named_parameters().Where(p => p.parameter.requires_grad && !_frozen.Contains(ComponentOf(p.name))).Select(p => (p.name, p.parameter));

    /// <summary>Counts total, trainable and frozen parameters (works on the <c>meta</c> device).</summary>
    public ParameterCounts CountParameters()
    {
        long total = 0, trainable = 0;
        foreach (var (name, p) in named_parameters())
        {
            total += p.numel();
            if (p.requires_grad && !_frozen.Contains(ComponentOf(name)))
            {
                trainable += p.numel();
            }
        }

        return new ParameterCounts(total, trainable, total - trainable);
    }

    /// <summary>The component a state-dict key belongs to (its first dotted segment).</summary>
    public static string ComponentOf(string stateDictKey)
    {
        ArgumentNullException.ThrowIfNull(stateDictKey);
        var dot = stateDictKey.IndexOf('.', StringComparison.Ordinal);
        return dot < 0 ? stateDictKey : stateDictKey[..dot];
    }

    /// <summary>
    /// A SHA-256 fingerprint of a component's weights (hex), cached until the component is frozen, unfrozen or
    /// <see cref="ClearFingerprints"/> is called. The key of caches of frozen outputs.
    /// </summary>
    public string WeightsFingerprint(string component)
    {
        lock (_fingerprintLock)
        {
            if (_fingerprints.TryGetValue(component, out var known))
            {
                return known;
            }
        }

        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using (var scope = NewDisposeScope())
        {
            foreach (var (key, value) in state_dict().Where(kv => ComponentOf(kv.Key) == component).OrderBy(kv => kv.Key, StringComparer.Ordinal))
            {
                hash.AppendData(System.Text.Encoding.UTF8.GetBytes(key + ":" + string.Join(',', value.shape) + ":" + value.dtype));
                var cpu = value.detach().cpu().contiguous();
                hash.AppendData(cpu.bytes);
            }
        }

        var fingerprint = Convert.ToHexStringLower(hash.GetHashAndReset());
        lock (_fingerprintLock)
        {
            _fingerprints[component] = fingerprint;
        }

        return fingerprint;
    }

    /// <summary>Forgets cached weight fingerprints (call after changing weights in place).</summary>
    public void ClearFingerprints()
    {
        lock (_fingerprintLock)
        {
            _fingerprints.Clear();
        }
    }

    /// <summary>The submodule of a component, or null for a parameter component.</summary>
    protected nn.Module? ComponentModule(string component) =>
        named_children().FirstOrDefault(c => c.name == component).module;

    private Parameter[] ParametersOf(string component)
    {
        ArgumentNullException.ThrowIfNull(component);
        if (ComponentModule(component) is { } module)
        {
            return [.. module.parameters()];
        }

        var direct = named_parameters(recurse: false).FirstOrDefault(p => p.name == component);
        return direct.parameter is not null
            ? [direct.parameter]
            : throw new ArgumentException($"The model has no component \"{component}\"; it has {string.Join(", ", ComponentNames)}.", nameof(component));
    }
}
