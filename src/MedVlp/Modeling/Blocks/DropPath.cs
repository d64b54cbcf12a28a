using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace MedVlp.Modeling.Blocks;

/// <summary>
/// Stochastic depth (timm's <c>DropPath</c>): in training, zeroes the whole residual branch of a sample with
/// probability p and scales the kept ones by 1 / (1 - p); the identity in evaluation or when p = 0.
/// </summary>
public sealed class DropPath : Module<Tensor, Tensor>
{
    /// <summary>Creates the module.</summary>
    public DropPath(double probability)
        : base(nameof(DropPath))
    {
        if (probability is < 0 or >= 1)
        {
            throw new ArgumentOutOfRangeException(nameof(probability), probability, "The drop probability must be in [0, 1).");
        }

        Probability = probability;
    }

    /// <summary>The probability of dropping a sample's branch.</summary>
    public double Probability { get; }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        if (!training || Probability == 0)
        {
            return x.alias();
        }

        using var scope = NewDisposeScope();
        var keep = 1 - Probability;
        var shape = new long[x.Dimensions];
        Array.Fill(shape, 1L);
        shape[0] = x.shape[0];
        var mask = empty(shape, x.dtype, x.device).bernoulli_(keep);
        return scope.MoveToOuter(x * mask / keep);
    }
}
