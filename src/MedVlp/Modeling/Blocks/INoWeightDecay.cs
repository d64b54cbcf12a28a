using TorchSharp.Modules;
using Module = TorchSharp.torch.nn.Module;

namespace MedVlp.Modeling.Blocks;

/// <summary>
/// A module that declares which of its parameters take no weight decay (biases, norm scales and shifts, embeddings,
/// learned tokens). Names are relative to the module, as in its <c>state_dict()</c>, and cover its children too, so an
/// optimizer asks the root model once (<see cref="NoWeightDecay.ParameterNames(Module)"/>) instead of matching suffixes.
/// </summary>
public interface INoWeightDecay
{
    /// <summary>The names (relative to this module, children included) of the parameters that take no weight decay.</summary>
    IEnumerable<string> NoWeightDecayParameterNames();
}

/// <summary>Composes <see cref="INoWeightDecay"/> declarations over a module tree.</summary>
public static class NoWeightDecay
{
    /// <summary>
    /// The no-decay parameter names of <paramref name="module"/>: its own declaration if it implements
    /// <see cref="INoWeightDecay"/>; otherwise defaults: the <c>bias</c> of linear and convolution layers, every
    /// parameter of norm layers and embedding tables, and for any other module its own scalar and vector parameters
    /// (timm's rule, e.g. a <c>logit_scale</c>) plus whatever its children declare.
    /// </summary>
    public static IReadOnlySet<string> ParameterNames(Module module)
    {
        ArgumentNullException.ThrowIfNull(module);
        return Of(module).ToHashSet(StringComparer.Ordinal);
    }

    /// <summary>
    /// Helper for implementers: <paramref name="own"/> (names of the module's direct parameters) followed by the
    /// declarations of each child, prefixed with the child's name.
    /// </summary>
    public static IEnumerable<string> Compose(Module module, params string[] own)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(own);
        foreach (var name in own)
        {
            yield return name;
        }

        foreach (var (childName, child) in module.named_children())
        {
            foreach (var name in Of(child))
            {
                yield return childName + "." + name;
            }
        }
    }

    private static IEnumerable<string> Of(Module module) => module switch
    {
        INoWeightDecay declared => declared.NoWeightDecayParameterNames(),
        Linear or Conv1d or Conv2d or Conv3d => module.named_parameters(recurse: false).Where(p => p.name == "bias").Select(p => p.name),
        LayerNorm or GroupNorm or BatchNorm1d or BatchNorm2d or BatchNorm3d or Embedding => module.named_parameters(recurse: false).Select(p => p.name),
        _ => Compose(module, module.named_parameters(recurse: false).Where(p => p.parameter.Dimensions <= 1).Select(p => p.name).ToArray()),
    };
}
