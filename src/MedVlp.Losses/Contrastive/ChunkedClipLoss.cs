using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Losses;

/// <summary>
/// <see cref="ClipLoss"/> with memory bounded by <see cref="ClipLossOptions.ChunkSize"/> x B logits instead of B x B,
/// in the forward and the backward pass: the cross-entropies are computed block by block of rows (both directions in
/// one pass, column log-sum-exps accumulated online), and the backward pass recomputes each block's logits from the
/// saved features (value and gradients equal the dense loss). With <see cref="ClipLossOptions.LocalLoss"/> each
/// direction is computed on its own.
/// Terms: <c>image_to_text</c>, <c>text_to_image</c>.
/// </summary>
public sealed class ChunkedClipLoss : VlpLoss<ContrastiveInput>
{
    private readonly ClipLossOptions options;

    /// <summary>Creates the loss.</summary>
    /// <param name="options">Options; null for the defaults (1024 rows per block).</param>
    public ChunkedClipLoss(ClipLossOptions? options = null)
        : base(nameof(ChunkedClipLoss))
    {
        this.options = options ?? new ClipLossOptions();
        Check.Smoothing(this.options.LabelSmoothing, nameof(options));
        if (this.options.ChunkSize < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(options), this.options.ChunkSize, "ChunkSize must be at least 1.");
        }
    }

    /// <inheritdoc />
    protected override LossOutput ComputeLoss(ContrastiveInput input)
    {
        Check.Matrix(input.ImageFeatures, nameof(input.ImageFeatures));
        Check.Matrix(input.TextFeatures, nameof(input.TextFeatures));
        Check.SameShape(input.ImageFeatures, nameof(input.ImageFeatures), input.TextFeatures, nameof(input.TextFeatures));
        Check.Scalar(input.LogitScale, nameof(input.LogitScale));
        var gatherer = options.Gatherer ?? SingleProcessGatherer.Instance;
        var image = input.ImageFeatures;
        var text = input.TextFeatures;
        var scale = input.LogitScale.reshape([]);
        Tensor imageToText, textToImage;
        if (gatherer.WorldSize > 1)
        {
            var allImage = gatherer.AllGather(image);
            var allText = gatherer.AllGather(text);
            if (options.LocalLoss)
            {
                var offset = image.shape[0] * gatherer.Rank;
                imageToText = ChunkedScaledCrossEntropy.Apply(image, allText, scale, offset, options.LabelSmoothing, options.ChunkSize);
                textToImage = ChunkedScaledCrossEntropy.Apply(text, allImage, scale, offset, options.LabelSmoothing, options.ChunkSize);
            }
            else
            {
                var both = ChunkedSymmetricCrossEntropy.Apply(allImage, allText, scale, options.LabelSmoothing, options.ChunkSize);
                imageToText = both[0];
                textToImage = both[1];
            }
        }
        else
        {
            var both = ChunkedSymmetricCrossEntropy.Apply(image, text, scale, options.LabelSmoothing, options.ChunkSize);
            imageToText = both[0];
            textToImage = both[1];
        }

        var total = (imageToText + textToImage) / 2;
        return new LossOutput(total, [new("image_to_text", imageToText), new("text_to_image", textToImage)]);
    }
}

/// <summary>
/// mean_i CE(s * a_i B^T, offset + i) with label smoothing, computed in blocks of rows; the backward pass recomputes
/// each block: dL/dlogits = (softmax - target) / n, dA = s G B, dB = s G^T A, ds = sum(G * A B^T).
/// </summary>
internal sealed class ChunkedScaledCrossEntropy : autograd.SingleTensorFunction<ChunkedScaledCrossEntropy>
{
    public override string Name => nameof(ChunkedScaledCrossEntropy);

    public static Tensor Apply(Tensor rows, Tensor columns, Tensor scale, long offset, double smoothing, int chunk) =>
        apply(rows, columns, scale, offset, smoothing, chunk);

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var rows = (Tensor)vars[0];
        var columns = (Tensor)vars[1];
        var scale = (Tensor)vars[2];
        var offset = (long)vars[3];
        var smoothing = (double)vars[4];
        var chunk = (int)vars[5];
        ctx.save_for_backward([rows, columns, scale]);
        ctx.save_data("offset", offset);
        ctx.save_data("smoothing", smoothing);
        ctx.save_data("chunk", chunk);

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var n = rows.shape[0];
        var m = columns.shape[0];
        var columnsT = columns.t();
        var sum = zeros([], dtype: rows.dtype, device: rows.device);
        for (long start = 0; start < n; start += chunk)
        {
            using var blockScope = NewDisposeScope();
            var len = Math.Min(chunk, n - start);
            var logits = rows.narrow(0, start, len).matmul(columnsT).mul_(scale);

            // CE with smoothing eps: logsumexp - (1 - eps) * l[i, offset + i] - eps/m * sum_j l[i, j].
            sum.add_(logits.logsumexp(1).sum()).sub_(logits.diagonal(offset + start).sum().mul_(1.0 - smoothing));
            if (smoothing != 0)
            {
                sum.sub_(logits.sum().mul_(smoothing / m));
            }
        }

        return scope.MoveToOuter(sum.div_(n));
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output)
    {
        // The scope also owns the handles of the saved tensors (their storage stays with autograd).
        using var scope = NewDisposeScope();
        var saved = ctx.get_saved_variables();
        var rows = saved[0];
        var columns = saved[1];
        var scale = saved[2];
        var offset = (long)ctx.get_data("offset");
        var smoothing = (double)ctx.get_data("smoothing");
        var chunk = (int)ctx.get_data("chunk");

        using var noGrad = no_grad();
        var n = rows.shape[0];
        var m = columns.shape[0];
        var columnsT = columns.t();
        var gradRows = zeros_like(rows);
        var gradColumns = zeros_like(columns);
        var gradScale = zeros([], dtype: rows.dtype, device: rows.device);
        var factor = grad_output / n;
        grad_output.Dispose(); // wrapped by TorchSharp in the caller's scope; not used after this point
        for (long start = 0; start < n; start += chunk)
        {
            using var blockScope = NewDisposeScope();
            var len = Math.Min(chunk, n - start);
            var block = rows.narrow(0, start, len);
            var raw = block.matmul(columnsT);
            var logits = raw.mul(scale);
            var g = logits.softmax(1);
            g.diagonal(offset + start).sub_(1.0 - smoothing);
            if (smoothing != 0)
            {
                g.sub_(smoothing / m);
            }

            g.mul_(factor);
            gradRows.narrow(0, start, len).copy_(g.matmul(columns).mul_(scale));
            gradColumns.add_(g.t().matmul(block).mul_(scale));
            gradScale.add_((g * raw).sum());
        }

        // One entry per argument of forward; the offset, smoothing and chunk size have no gradient.
        return [scope.MoveToOuter(gradRows), scope.MoveToOuter(gradColumns), scope.MoveToOuter(gradScale.reshape(scale.shape)), null!, null!, null!];
    }
}

/// <summary>
/// Both directions of the square CLIP loss in one pass over row blocks of l = s X Y^T: the forward pass keeps the row
/// log-sum-exps and accumulates the column log-sum-exps online; the backward pass recomputes each block once and uses
/// dL/dl = g1/n (P - T) + g2/n (Q - T), with P the row softmax, Q the column softmax and T the smoothed identity.
/// Outputs: [image_to_text, text_to_image, row log-sum-exps, column log-sum-exps].
/// </summary>
internal sealed class ChunkedSymmetricCrossEntropy : autograd.MultiTensorFunction<ChunkedSymmetricCrossEntropy>
{
    public override string Name => nameof(ChunkedSymmetricCrossEntropy);

    public static List<Tensor> Apply(Tensor rows, Tensor columns, Tensor scale, double smoothing, int chunk) =>
        apply(rows, columns, scale, smoothing, chunk);

    public override List<Tensor> forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var rows = (Tensor)vars[0];
        var columns = (Tensor)vars[1];
        var scale = (Tensor)vars[2];
        var smoothing = (double)vars[3];
        var chunk = (int)vars[4];

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var n = rows.shape[0];
        var columnsT = columns.t();
        var rowLse = empty(n, dtype: rows.dtype, device: rows.device);
        var columnLse = full(n, double.NegativeInfinity, dtype: rows.dtype, device: rows.device);
        var shared = zeros([], dtype: rows.dtype, device: rows.device);
        for (long start = 0; start < n; start += chunk)
        {
            using var blockScope = NewDisposeScope();
            var len = Math.Min(chunk, n - start);
            var logits = rows.narrow(0, start, len).matmul(columnsT).mul_(scale);
            rowLse.narrow(0, start, len).copy_(logits.logsumexp(1));
            columnLse.copy_(logaddexp(columnLse, logits.logsumexp(0)));

            // The target part shared by both directions: (1 - eps) * sum of the diagonal + eps/n * sum of all logits.
            shared.add_(logits.diagonal(start).sum().mul_(1.0 - smoothing));
            if (smoothing != 0)
            {
                shared.add_(logits.sum().mul_(smoothing / n));
            }
        }

        // The log-sum-exps are saved for the backward pass; autograd keeps saved tensors only if they are inputs or
        // outputs, so they are returned too (non-differentiable; the caller ignores them).
        ctx.save_for_backward([rows, columns, scale, rowLse, columnLse]);
        ctx.mark_non_differentiable([rowLse, columnLse]);
        ctx.set_materialize_grads(false);
        ctx.save_data("smoothing", smoothing);
        ctx.save_data("chunk", chunk);
        var imageToText = (rowLse.sum() - shared) / n;
        var textToImage = (columnLse.sum() - shared) / n;
        return [scope.MoveToOuter(imageToText), scope.MoveToOuter(textToImage), scope.MoveToOuter(rowLse), scope.MoveToOuter(columnLse)];
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, List<Tensor> grad_outputs)
    {
        // The scope also owns the handles of the saved tensors (their storage stays with autograd).
        using var scope = NewDisposeScope();
        var saved = ctx.get_saved_variables();
        var rows = saved[0];
        var columns = saved[1];
        var scale = saved[2];
        var rowLse = saved[3];
        var columnLse = saved[4];
        var smoothing = (double)ctx.get_data("smoothing");
        var chunk = (int)ctx.get_data("chunk");

        using var noGrad = no_grad();
        var n = rows.shape[0];
        var columnsT = columns.t();
        // Grads are not materialised: an output that did not reach the loss has a null gradient.
        var g1 = grad_outputs[0] is { } go1 && !go1.IsInvalid ? go1 / n : zeros([], dtype: rows.dtype, device: rows.device);
        var g2 = grad_outputs[1] is { } go2 && !go2.IsInvalid ? go2 / n : zeros([], dtype: rows.dtype, device: rows.device);
        foreach (var gradOutput in grad_outputs)
        {
            // TorchSharp wraps the incoming gradients in the caller's scope; they are not used after this point.
            gradOutput?.Dispose();
        }

        var targetWeight = g1 + g2;
        var gradRows = zeros_like(rows);
        var gradColumns = zeros_like(columns);
        var gradScale = zeros([], dtype: rows.dtype, device: rows.device);
        for (long start = 0; start < n; start += chunk)
        {
            using var blockScope = NewDisposeScope();
            var len = Math.Min(chunk, n - start);
            var block = rows.narrow(0, start, len);
            var raw = block.matmul(columnsT);
            var logits = raw.mul(scale);
            var rowSoftmax = (logits - rowLse.narrow(0, start, len).unsqueeze(1)).exp_().mul_(g1);
            var g = (logits - columnLse.unsqueeze(0)).exp_().mul_(g2).add_(rowSoftmax);
            g.diagonal(start).sub_(targetWeight * (1.0 - smoothing));
            if (smoothing != 0)
            {
                g.sub_(targetWeight * (smoothing / n));
            }

            gradRows.narrow(0, start, len).copy_(g.matmul(columns).mul_(scale));
            gradColumns.add_(g.t().matmul(block).mul_(scale));
            gradScale.add_((g * raw).sum());
        }

        // One entry per argument of forward; the smoothing and chunk size have no gradient.
        return [scope.MoveToOuter(gradRows), scope.MoveToOuter(gradColumns), scope.MoveToOuter(gradScale.reshape(scale.shape)), null!, null!];
    }
}
