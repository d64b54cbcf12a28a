using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace MedVlp.Modeling.Blocks;

/// <summary>
/// The SwiGLU feed-forward block (timm's <c>SwiGLU</c>, as EVA-02 and Primus use):
/// <c>fc2(norm(silu(fc1_g(x)) * fc1_x(x)))</c>, where <c>norm</c> is an optional LayerNorm on the hidden units
/// (EVA-02's sub-LN).
/// </summary>
public sealed class SwiGluMlp : Module<Tensor, Tensor>, INoWeightDecay
{
#pragma warning disable IDE1006, SA1300 // State-dict names follow timm.
    private readonly Linear fc1_g;
    private readonly Linear fc1_x;
    private readonly LayerNorm? norm;
    private readonly Linear fc2;
#pragma warning restore IDE1006, SA1300

    /// <summary>Creates the block.</summary>
    /// <param name="width">Input and output width.</param>
    /// <param name="hidden">Hidden width (of each of the two input projections).</param>
    /// <param name="hiddenNorm">Whether a LayerNorm normalises the gated hidden units.</param>
    /// <param name="layerNormEps">Epsilon of that LayerNorm.</param>
    /// <param name="device">Where the parameters live.</param>
    public SwiGluMlp(int width, int hidden, bool hiddenNorm = false, double layerNormEps = 1e-6, Device? device = null)
        : base(nameof(SwiGluMlp))
    {
        if (width <= 0 || hidden <= 0)
        {
            throw new ArgumentException($"A SwiGLU MLP needs positive widths, got width {width}, hidden {hidden}.");
        }

        fc1_g = Linear(width, hidden, device: device);
        fc1_x = Linear(width, hidden, device: device);
        norm = hiddenNorm ? LayerNorm(hidden, layerNormEps, device: device) : null;
        fc2 = Linear(hidden, width, device: device);
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var hidden = F.silu(fc1_g.forward(x)) * fc1_x.forward(x);
        if (norm is not null)
        {
            hidden = norm.forward(hidden);
        }

        return scope.MoveToOuter(fc2.forward(hidden));
    }

    /// <inheritdoc/>
    public IEnumerable<string> NoWeightDecayParameterNames() => NoWeightDecay.Compose(this);
}
