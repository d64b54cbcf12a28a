using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace MedVlp.Modeling.Blocks;

/// <summary>BERT's feed-forward input (Hugging Face <c>BertIntermediate</c>): <c>dense</c> then the activation.</summary>
public sealed class BertIntermediate : Module<Tensor, Tensor>, INoWeightDecay
{
#pragma warning disable IDE1006, SA1300 // State-dict names follow Hugging Face.
    private readonly Linear dense;
#pragma warning restore IDE1006, SA1300
    private readonly MlpActivation _activation;

    /// <summary>Creates the block.</summary>
    public BertIntermediate(int hiddenSize, int intermediateSize, MlpActivation activation = MlpActivation.Gelu, Device? device = null)
        : base(nameof(BertIntermediate))
    {
        dense = Linear(hiddenSize, intermediateSize, device: device);
        _activation = activation;
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor hidden)
    {
        using var scope = NewDisposeScope();
        return scope.MoveToOuter(Mlp.Activate(dense.forward(hidden), _activation));
    }

    /// <inheritdoc/>
    public IEnumerable<string> NoWeightDecayParameterNames() => NoWeightDecay.Compose(this);
}

/// <summary>
/// BERT's post-norm output (Hugging Face <c>BertSelfOutput</c> and <c>BertOutput</c>): <c>dense</c>, dropout,
/// residual, <c>LayerNorm</c>. <c>forward(hidden, residual)</c>.
/// </summary>
public sealed class BertOutput : Module<Tensor, Tensor, Tensor>, INoWeightDecay
{
#pragma warning disable IDE1006, SA1300 // State-dict names follow Hugging Face.
    private readonly Linear dense;
    private readonly LayerNorm LayerNorm;
    private readonly Dropout dropout;
#pragma warning restore IDE1006, SA1300

    /// <summary>Creates the block.</summary>
    public BertOutput(int inputSize, int hiddenSize, double layerNormEps = 1e-12, double hiddenDropout = 0.1, Device? device = null)
        : base(nameof(BertOutput))
    {
        dense = Linear(inputSize, hiddenSize, device: device);
        LayerNorm = nn.LayerNorm(hiddenSize, layerNormEps, device: device);
        dropout = Dropout(hiddenDropout);
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor hidden, Tensor residual)
    {
        using var scope = NewDisposeScope();
        return scope.MoveToOuter(LayerNorm.forward(dropout.forward(dense.forward(hidden)) + residual));
    }

    /// <inheritdoc/>
    public IEnumerable<string> NoWeightDecayParameterNames() => NoWeightDecay.Compose(this);
}
