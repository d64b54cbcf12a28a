using MedVlp.Losses;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomLossSample;

/// <summary>
/// Wang and Isola's uniformity loss, log mean exp(-t |x_i - x_j|^2) over the L2-normalised embeddings: it spreads
/// embeddings over the sphere. VlpLoss runs ComputeLoss in a dispose scope and keeps only the returned tensors.
/// </summary>
public sealed class UniformityLoss(double t = 2.0) : VlpLoss<Tensor>(nameof(UniformityLoss))
{
    protected override LossOutput ComputeLoss(Tensor embeddings)
    {
        var x = nn.functional.normalize(embeddings, dim: -1);
        var squaredDistances = x.matmul(x.t()).mul(-2).add(2);                  // |x_i - x_j|^2 on the unit sphere
        var offDiagonal = ones_like(squaredDistances).triu(1).to_type(ScalarType.Bool);
        var loss = squaredDistances.masked_select(offDiagonal).mul(-t).exp().mean().log();
        return new LossOutput(loss);
    }
}
