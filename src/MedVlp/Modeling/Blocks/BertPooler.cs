using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace MedVlp.Modeling.Blocks;

/// <summary>BERT's pooler (Hugging Face <c>BertPooler</c>): <c>tanh(dense(h[:, 0]))</c>.</summary>
public sealed class BertPooler : Module<Tensor, Tensor>, INoWeightDecay
{
#pragma warning disable IDE1006, SA1300 // State-dict names follow Hugging Face.
    private readonly Linear dense;
#pragma warning restore IDE1006, SA1300

    /// <summary>Creates the pooler.</summary>
    public BertPooler(int hiddenSize, Device? device = null)
        : base(nameof(BertPooler))
    {
        dense = Linear(hiddenSize, hiddenSize, device: device);
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor hidden)
    {
        using var scope = NewDisposeScope();
        return scope.MoveToOuter(tanh(dense.forward(hidden[.., 0])));
    }

    /// <inheritdoc/>
    public IEnumerable<string> NoWeightDecayParameterNames() => NoWeightDecay.Compose(this);
}
