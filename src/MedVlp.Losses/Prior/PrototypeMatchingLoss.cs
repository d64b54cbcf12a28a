using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MedVlp.Losses;

/// <summary>How the KL term of <see cref="PrototypeMatchingLoss"/> is reduced (PyTorch's <c>kl_div</c> reductions).</summary>
public enum KlReduction
{
    /// <summary>Sum divided by the batch size B.</summary>
    BatchMean,

    /// <summary>Mean over every element.</summary>
    Mean,

    /// <summary>Sum over every element.</summary>
    Sum,
}

/// <summary>Options of <see cref="PrototypeMatchingLoss"/>.</summary>
public sealed class PrototypeMatchingLossOptions
{
    /// <summary>The weight of the L1 term (PRIOR: 10).</summary>
    public double L1Weight { get; set; } = 10.0;

    /// <summary>The weight of the KL term (PRIOR: 1).</summary>
    public double KlWeight { get; set; } = 1.0;

    /// <summary>The KL reduction ([unverified] against the released code; batch mean by default).</summary>
    public KlReduction KlReduction { get; set; } = KlReduction.BatchMean;

    /// <summary>The linear-assignment solver: for a cost matrix, each row's column. Defaults to <see cref="LinearAssignment.Solve(float[,])"/>.</summary>
    public Func<float[,], int[]> Assignment { get; set; } = LinearAssignment.Solve;
}

/// <summary>Input of <see cref="PrototypeMatchingLoss"/>.</summary>
/// <param name="Predictions">The decoder's generated sentence vectors G (B x M x D), M = 16 learned queries in PRIOR.</param>
/// <param name="Targets">The report's sentence prototypes (B x M x D), zero-padded to M.</param>
/// <param name="TargetLogits">l_gt, the target sentences' prototype logits (B x M x K).</param>
/// <param name="Prototypes">The codebook E (K x D).</param>
public sealed record PrototypeMatchingInput(Tensor Predictions, Tensor Targets, Tensor TargetLogits, Tensor Prototypes);

/// <summary>
/// PRIOR's report-side reconstruction loss. Per sample, predictions and targets are matched one to one by the
/// Hungarian algorithm on the L1 cost C[i, j] = |G_i - T_j|_1 (M x M, zero-padded targets); then
/// L = L1Weight * mean |G_i - T_pi(i)| + KlWeight * KL(softmax(l_gt_pi(i)) || softmax(G_i E^T)).
/// (PRIOR adds a global InfoNCE of the pooled prediction: use <see cref="ClipLoss"/> in a <see cref="CompositeLoss{TInput}"/>.)
/// Terms: <c>l1</c>, <c>kl</c> (unweighted).
/// </summary>
public sealed class PrototypeMatchingLoss : VlpLoss<PrototypeMatchingInput>
{
    private readonly PrototypeMatchingLossOptions options;

    /// <summary>Creates the loss.</summary>
    /// <param name="options">Options; null for PRIOR's defaults.</param>
    public PrototypeMatchingLoss(PrototypeMatchingLossOptions? options = null)
        : base(nameof(PrototypeMatchingLoss))
    {
        this.options = options ?? new PrototypeMatchingLossOptions();
        ArgumentNullException.ThrowIfNull(this.options.Assignment, nameof(options));
    }

    /// <summary>The assignment of every sample: for prediction i of sample b, the index of its matched target.</summary>
    /// <param name="predictions">G (B x M x D).</param>
    /// <param name="targets">T (B x M x D).</param>
    /// <returns>Indices (B x M, int64) on the predictions' device.</returns>
    public Tensor Match(Tensor predictions, Tensor targets)
    {
        Check.Rank(predictions, 3, nameof(predictions), "B x M x D");
        Check.SameShape(predictions, nameof(predictions), targets, nameof(targets));
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var b = (int)predictions.shape[0];
        var m = (int)predictions.shape[1];
        var cost = cdist(predictions.detach().to_type(ScalarType.Float32), targets.detach().to_type(ScalarType.Float32), p: 1).cpu().contiguous();
        var flat = cost.data<float>().ToArray();
        var indices = new long[b * m];
        var matrix = new float[m, m];
        for (var s = 0; s < b; s++)
        {
            flat.AsSpan(s * m * m, m * m).CopyTo(MemoryMarshal.CreateSpan(ref matrix[0, 0], m * m));
            var columns = options.Assignment(matrix);
            for (var i = 0; i < m; i++)
            {
                indices[(s * m) + i] = columns[i];
            }
        }

        return scope.MoveToOuter(tensor(indices, [b, m], ScalarType.Int64).to(predictions.device));
    }

    /// <inheritdoc />
    protected override LossOutput ComputeLoss(PrototypeMatchingInput input)
    {
        Check.Rank(input.Predictions, 3, nameof(input.Predictions), "B x M x D");
        Check.SameShape(input.Predictions, nameof(input.Predictions), input.Targets, nameof(input.Targets));
        Check.Rank(input.TargetLogits, 3, nameof(input.TargetLogits), "B x M x K");
        Check.Matrix(input.Prototypes, nameof(input.Prototypes));
        var k = input.Prototypes.shape[0];
        if (input.TargetLogits.shape[0] != input.Predictions.shape[0] || input.TargetLogits.shape[1] != input.Predictions.shape[1] || input.TargetLogits.shape[2] != k)
        {
            throw new ArgumentException($"TargetLogits [{string.Join(", ", input.TargetLogits.shape)}] must be B x M x {k}.", nameof(input));
        }

        var index = Match(input.Predictions, input.Targets);
        var d = input.Targets.shape[2];
        var matchedTargets = input.Targets.gather(1, index.unsqueeze(2).expand(-1, -1, d));
        var matchedLogits = input.TargetLogits.gather(1, index.unsqueeze(2).expand(-1, -1, k));
        var l1 = F.l1_loss(input.Predictions, matchedTargets);
        var predictedLogProbabilities = input.Predictions.matmul(input.Prototypes.t()).log_softmax(-1);
        var targetLogProbabilities = matchedLogits.log_softmax(-1);
        var pointwise = targetLogProbabilities.exp() * (targetLogProbabilities - predictedLogProbabilities);
        var kl = options.KlReduction switch
        {
            KlReduction.BatchMean => pointwise.sum() / input.Predictions.shape[0],
            KlReduction.Mean => pointwise.mean(),
            _ => pointwise.sum(),
        };
        var total = (options.L1Weight * l1) + (options.KlWeight * kl);
        return new LossOutput(total, [new("l1", l1), new("kl", kl)]);
    }
}
