using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Losses;

/// <summary>
/// <see cref="ClipLoss"/> with memory bounded by <see cref="ClipLossOptions.ChunkSize"/> x B logits instead of B x B,
/// in the forward and the backward pass: each direction's cross-entropy is computed block by block of rows, and
/// the backward pass recomputes each block's logits from the saved features (value and gradients equal the dense loss).
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
                imageToText = ChunkedScaledCrossEntropy.Apply(allImage, allText, scale, 0, options.LabelSmoothing, options.ChunkSize);
                textToImage = ChunkedScaledCrossEntropy.Apply(allText, allImage, scale, 0, options.LabelSmoothing, options.ChunkSize);
            }
        }
        else
        {
            imageToText = ChunkedScaledCrossEntropy.Apply(image, text, scale, 0, options.LabelSmoothing, options.ChunkSize);
            textToImage = ChunkedScaledCrossEntropy.Apply(text, image, scale, 0, options.LabelSmoothing, options.ChunkSize);
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
        var saved = ctx.get_saved_variables();
        var rows = saved[0];
        var columns = saved[1];
        var scale = saved[2];
        var offset = (long)ctx.get_data("offset");
        var smoothing = (double)ctx.get_data("smoothing");
        var chunk = (int)ctx.get_data("chunk");

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var n = rows.shape[0];
        var m = columns.shape[0];
        var columnsT = columns.t();
        var gradRows = zeros_like(rows);
        var gradColumns = zeros_like(columns);
        var gradScale = zeros([], dtype: rows.dtype, device: rows.device);
        var factor = grad_output / n;
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
