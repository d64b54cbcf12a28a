using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Losses;

/// <summary>Options of <see cref="OrthogonalityLoss"/>. The defaults are M-FLAG's released code; the paper writes Scale = 1 and OffDiagonalWeight = 1.</summary>
public sealed class OrthogonalityLossOptions
{
    /// <summary>The weight lambda of the squared off-diagonal entries (released code: 0.0051).</summary>
    public double OffDiagonalWeight { get; set; } = 0.0051;

    /// <summary>The factor in front of the bracket (released code: 0.5).</summary>
    public double Scale { get; set; } = 0.5;

    /// <summary>The paper's variant: no 1/2 and lambda = 1.</summary>
    public static OrthogonalityLossOptions Paper => new() { OffDiagonalWeight = 1.0, Scale = 1.0 };
}

/// <summary>
/// M-FLAG's latent-space orthogonality loss on the raw image feature Z (N x d):
/// C = Z^T Z / N, L = Scale * [ sum_i (C_ii - 1)^2 + lambda * sum_{i != j} C_ij^2 ].
/// Input: Z. Terms: <c>on_diagonal</c>, <c>off_diagonal</c> (both unweighted sums).
/// </summary>
public sealed class OrthogonalityLoss : VlpLoss<Tensor>
{
    private readonly OrthogonalityLossOptions options;

    /// <summary>Creates the loss.</summary>
    /// <param name="options">Options; null for the released code's defaults.</param>
    public OrthogonalityLoss(OrthogonalityLossOptions? options = null)
        : base(nameof(OrthogonalityLoss))
    {
        this.options = options ?? new OrthogonalityLossOptions();
    }

    /// <inheritdoc />
    protected override LossOutput ComputeLoss(Tensor input)
    {
        Check.Matrix(input, "features");
        var n = input.shape[0];
        var c = input.t().matmul(input) / n;
        var diagonal = c.diagonal();
        var onDiagonal = (diagonal - 1).square().sum();
        var offDiagonal = c.square().sum() - diagonal.square().sum();
        var total = options.Scale * (onDiagonal + (options.OffDiagonalWeight * offDiagonal));
        return new LossOutput(total, [new("on_diagonal", onDiagonal), new("off_diagonal", offDiagonal)]);
    }
}
