using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace MedVlp.Modeling.Blocks;

/// <summary>Activation of an <see cref="Mlp"/>.</summary>
public enum MlpActivation
{
    /// <summary>Exact GELU (erf), as BERT, ViT and EVA use.</summary>
    Gelu,

    /// <summary>GELU's tanh approximation (GPT-2's <c>gelu_new</c>).</summary>
    GeluTanh,

    /// <summary>x * sigmoid(1.702 x) (OpenAI CLIP's QuickGELU).</summary>
    QuickGelu,

    /// <summary>ReLU.</summary>
    Relu,
}

/// <summary>The two-layer feed-forward block of a transformer (timm names): <c>fc1</c>, activation, <c>fc2</c>.</summary>
public sealed class Mlp : Module<Tensor, Tensor>, INoWeightDecay
{
#pragma warning disable IDE1006, SA1300 // State-dict names follow timm.
    private readonly Linear fc1;
    private readonly Linear fc2;
    private readonly Dropout drop;
#pragma warning restore IDE1006, SA1300

    /// <summary>Creates the block.</summary>
    /// <param name="width">Input and output width.</param>
    /// <param name="hidden">Hidden width.</param>
    /// <param name="activation">Activation.</param>
    /// <param name="dropout">Dropout after <c>fc2</c> (training only).</param>
    /// <param name="device">Where the parameters live.</param>
    public Mlp(int width, int hidden, MlpActivation activation = MlpActivation.Gelu, double dropout = 0, Device? device = null)
        : base(nameof(Mlp))
    {
        if (width <= 0 || hidden <= 0 || dropout is < 0 or >= 1)
        {
            throw new ArgumentException($"An MLP needs positive widths and dropout in [0, 1), got width {width}, hidden {hidden}, dropout {dropout}.");
        }

        Activation = activation;
        fc1 = Linear(width, hidden, device: device);
        fc2 = Linear(hidden, width, device: device);
        drop = Dropout(dropout);
        RegisterComponents();
    }

    /// <summary>The activation.</summary>
    public MlpActivation Activation { get; }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return scope.MoveToOuter(drop.forward(fc2.forward(Activate(fc1.forward(x), Activation))));
    }

    /// <summary>Applies <paramref name="activation"/>.</summary>
    public static Tensor Activate(Tensor x, MlpActivation activation) => activation switch
    {
        MlpActivation.Gelu => F.gelu(x),
        MlpActivation.GeluTanh => F.gelu(x, TorchSharp.Modules.GELU.Approximate.tanh),
        MlpActivation.QuickGelu => x * F.sigmoid(x * 1.702),
        MlpActivation.Relu => F.relu(x),
        _ => throw new ArgumentOutOfRangeException(nameof(activation), activation, "Unknown activation."),
    };

    /// <inheritdoc/>
    public IEnumerable<string> NoWeightDecayParameterNames() => NoWeightDecay.Compose(this);
}
