using MedVlp.Losses;
using static TorchSharp.torch;

namespace MedVlp.Distributed;

/// <summary>What gradient the local rows of a gathered batch carry (see <see cref="ProcessGroupGatherer"/>).</summary>
public enum GatheredGradient
{
    /// <summary>
    /// The local rows carry the gradient of this process's loss times the world size. With a loss that every process
    /// computes identically over the whole gathered batch (<c>ClipLoss</c> with <c>LocalLoss = false</c>), that is
    /// exactly the sum over processes that open_clip's <c>gather_with_grad=True</c> all-reduces in the backward, so
    /// after <see cref="DataParallel"/> averages the gradients the update equals one process training on the global
    /// batch, with no collective in the backward. Do not use it with per-process (local) losses.
    /// </summary>
    ScaledByWorldSize,

    /// <summary>
    /// open_clip's default <c>gather_features(local_loss=False, gather_with_grad=False)</c>: the local rows carry this
    /// process's gradient, the other rows none. After averaging, encoder gradients are 1/world size of the
    /// single-process ones while parameters after the gather (the logit scale) get the full gradient; Adam's scale
    /// invariance hides most of that, clipping does not.
    /// </summary>
    LocalOnly,

    /// <summary>
    /// open_clip's <c>gather_with_grad=True</c>: the gather is differentiable; its backward sums the gathered tensor's
    /// gradient over all processes (one all-reduce per gathered tensor) and hands each process its own rows. Correct
    /// for any loss, including per-process losses (<c>ClipLoss</c> with <c>LocalLoss = true</c>, <c>SigLipLoss</c>),
    /// at the price of a collective inside the backward (every process must run the same backward).
    /// </summary>
    AllReduced,
}

/// <summary>
/// An <see cref="IFeatureGatherer"/> over a <see cref="ProcessGroup"/>: contrastive losses (<c>ClipLoss</c>,
/// <c>ChunkedClipLoss</c>, <c>SigLipLoss</c>, <c>QueryContrastiveLoss</c>) see the global batch. The other processes'
/// rows are gathered without gradient and this process's own rows are the input itself, so they keep its gradient.
/// </summary>
public sealed class ProcessGroupGatherer : IFeatureGatherer
{
    private readonly ProcessGroup _group;

    /// <summary>Creates the gatherer.</summary>
    /// <param name="group">The processes.</param>
    /// <param name="gradient">The gradient of the local rows; default <see cref="GatheredGradient.ScaledByWorldSize"/>.</param>
    public ProcessGroupGatherer(ProcessGroup group, GatheredGradient gradient = GatheredGradient.ScaledByWorldSize)
    {
        ArgumentNullException.ThrowIfNull(group);
        _group = group;
        Gradient = gradient;
    }

    /// <inheritdoc />
    public int Rank => _group.Rank;

    /// <inheritdoc />
    public int WorldSize => _group.WorldSize;

    /// <summary>The gradient the local rows carry.</summary>
    public GatheredGradient Gradient { get; }

    /// <inheritdoc />
    public Tensor AllGather(Tensor local)
    {
        ArgumentNullException.ThrowIfNull(local);
        if (_group.WorldSize == 1)
        {
            return local;
        }

        if (local.requires_grad && Gradient == GatheredGradient.AllReduced)
        {
            return DifferentiableAllGather.Apply(local, _group);
        }

        using var scope = NewDisposeScope();
        using var detached = local.detach();
        var all = _group.AllGather(detached);
        if (!local.requires_grad)
        {
            return scope.MoveToOuter(all);
        }

        var rows = local.shape[0];

        var own = local;
        if (Gradient == GatheredGradient.ScaledByWorldSize)
        {
            // Value exactly local (x - x is exactly 0); gradient WorldSize times the incoming one.
            own = detached + ((local - detached) * _group.WorldSize);
        }

        var parts = new List<Tensor>(3);
        if (Rank > 0)
        {
            parts.Add(all.narrow(0, 0, rows * Rank));
        }

        parts.Add(own);
        if (Rank < WorldSize - 1)
        {
            parts.Add(all.narrow(0, rows * (Rank + 1), rows * (WorldSize - Rank - 1)));
        }

        return scope.MoveToOuter(cat(parts, 0));
    }
}

/// <summary>All-gather along dimension 0 whose backward all-reduces (sums) the incoming gradient and returns this
/// process's rows (<c>torch.distributed.nn.all_gather</c>).</summary>
internal sealed class DifferentiableAllGather : TorchSharp.torch.autograd.SingleTensorFunction<DifferentiableAllGather>
{
    public override string Name => nameof(DifferentiableAllGather);

    public static Tensor Apply(Tensor local, ProcessGroup group) => apply(local, group);

    public override Tensor forward(TorchSharp.torch.autograd.AutogradContext ctx, params object[] vars)
    {
        var local = (Tensor)vars[0];
        var group = (ProcessGroup)vars[1];
        ctx.save_data("group", group);
        ctx.save_data("rows", local.shape[0]);
        using var noGrad = no_grad();
        using var detached = local.detach();
        return group.AllGather(detached);
    }

    public override List<Tensor> backward(TorchSharp.torch.autograd.AutogradContext ctx, Tensor grad_output)
    {
        using var scope = NewDisposeScope();
        var group = (ProcessGroup)ctx.get_data("group");
        var rows = (long)ctx.get_data("rows");
        using var noGrad = no_grad();
        var summed = grad_output.contiguous().clone();
        grad_output.Dispose(); // wrapped by TorchSharp in the caller's scope; not used after this point
        group.AllReduce(summed, ReduceOperation.Sum);
        var mine = summed.narrow(0, rows * group.Rank, rows).clone();
        return [scope.MoveToOuter(mine), null!];
    }
}
