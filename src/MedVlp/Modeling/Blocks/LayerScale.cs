using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace MedVlp.Modeling.Blocks;

/// <summary>LayerScale (CaiT, timm): a learned per-channel scale <c>gamma</c> (init a small constant) on a residual branch.</summary>
public sealed class LayerScale : Module<Tensor, Tensor>, INoWeightDecay
{
#pragma warning disable IDE1006, SA1300 // State-dict names follow timm.
    private readonly Parameter gamma;
#pragma warning restore IDE1006, SA1300

    /// <summary>Creates the scale with every channel at <paramref name="initialValue"/>.</summary>
    public LayerScale(int width, double initialValue = 1e-5, Device? device = null)
        : base(nameof(LayerScale))
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        gamma = new Parameter(full(width, initialValue, device: device));
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x) => x * gamma;

    /// <inheritdoc/>
    public IEnumerable<string> NoWeightDecayParameterNames() => ["gamma"];
}
