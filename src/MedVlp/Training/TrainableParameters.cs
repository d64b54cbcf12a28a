using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MedVlp.Training;

/// <summary>
/// The parameters a <see cref="Trainer"/> optimises: every parameter of the model and of the losses with
/// <c>requires_grad</c> (frozen ones never reach the optimizer), split into those that take weight decay and those that
/// do not.
/// </summary>
public sealed class TrainableParameters
{
    private TrainableParameters(IReadOnlyList<(string Name, Parameter Parameter)> decay, IReadOnlyList<(string Name, Parameter Parameter)> noDecay, int frozen)
    {
        Decay = decay;
        NoDecay = noDecay;
        FrozenCount = frozen;
    }

    /// <summary>Parameters with weight decay (names prefixed <c>model.</c> or <c>loss.</c>).</summary>
    public IReadOnlyList<(string Name, Parameter Parameter)> Decay { get; }

    /// <summary>Parameters without weight decay.</summary>
    public IReadOnlyList<(string Name, Parameter Parameter)> NoDecay { get; }

    /// <summary>How many parameters are frozen (left out).</summary>
    public int FrozenCount { get; }

    /// <summary>Every trainable parameter.</summary>
    public IEnumerable<Parameter> All => Decay.Concat(NoDecay).Select(p => p.Parameter);

    /// <summary>
    /// Collects the trainable parameters of <paramref name="model"/> and <paramref name="loss"/>.
    /// </summary>
    /// <param name="model">The model.</param>
    /// <param name="loss">The loss module.</param>
    /// <param name="noWeightDecay">The names (relative to a module) of its parameters that take no weight decay; defaults to
    /// what the modules declare (<see cref="Modeling.Blocks.NoWeightDecay.ParameterNames"/>).</param>
    public static TrainableParameters Collect(nn.Module model, nn.Module loss, Func<nn.Module, IReadOnlySet<string>>? noWeightDecay = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(loss);
        noWeightDecay ??= Modeling.Blocks.NoWeightDecay.ParameterNames;
        var decay = new List<(string, Parameter)>();
        var noDecay = new List<(string, Parameter)>();
        var frozen = 0;
        foreach (var (prefix, module) in new[] { ("model", model), ("loss", loss) })
        {
            var exempt = noWeightDecay(module);
            foreach (var (name, parameter) in module.named_parameters())
            {
                if (!parameter.requires_grad)
                {
                    frozen++;
                    continue;
                }

                (exempt.Contains(name) ? noDecay : decay).Add(($"{prefix}.{name}", parameter));
            }
        }

        return new TrainableParameters(decay, noDecay, frozen);
    }

    /// <summary>
    /// A name-based rule for models without declarations: weight matrices decay; vectors and scalars (biases, norm
    /// scales, temperatures) and position/class/latent token embeddings do not (timm's and open_clip's convention).
    /// </summary>
    public static IReadOnlySet<string> NameBasedNoWeightDecay(nn.Module module)
    {
        ArgumentNullException.ThrowIfNull(module);
        return module.named_parameters()
            .Where(p => p.parameter.dim() < 2 || p.name.EndsWith("pos_embed", StringComparison.Ordinal) || p.name.EndsWith("cls_token", StringComparison.Ordinal)
                || p.name.EndsWith("latent", StringComparison.Ordinal) || p.name.Contains("LayerNorm", StringComparison.Ordinal))
            .Select(p => p.name)
            .ToHashSet(StringComparer.Ordinal);
    }
}
