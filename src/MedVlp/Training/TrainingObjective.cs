using MedVlp.Losses;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MedVlp.Training;

/// <summary>
/// What a <see cref="Trainer"/> optimises: a model, the loss modules (whose learnable parts train with it), and how a
/// batch becomes loss inputs. Split in two so gradient accumulation can be exact for contrastive losses:
/// <see cref="Encode"/> runs the model on one micro-batch, <see cref="ComputeLoss"/> runs the losses on the features of
/// the whole (accumulated) batch.
/// </summary>
/// <remarks>
/// <para>Subclass it for a new architecture or loss combination. <see cref="Encode"/> must not look at other rows of the
/// batch (per-example features; batch norm in train mode breaks exact accumulation), and must leave everything it does
/// not return in its dispose scope.</para>
/// <para>Loss weights of a <see cref="CompositeLoss{TInput}"/> change per training stage through <see cref="SetLossWeight"/>.</para>
/// </remarks>
public abstract class TrainingObjective : IDisposable
{
    private bool _disposed;

    /// <summary>Creates the objective.</summary>
    /// <param name="model">The model (its trainable parameters are optimised).</param>
    /// <param name="loss">The loss module (its trainable parameters are optimised too).</param>
    protected TrainingObjective(nn.Module model, nn.Module loss)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(loss);
        Model = model;
        Loss = loss;
    }

    /// <summary>The model.</summary>
    public nn.Module Model { get; }

    /// <summary>The loss module.</summary>
    public nn.Module Loss { get; }

    /// <summary>The names of the loss parts whose weight a training stage may set (empty when the loss is not a composite).</summary>
    public virtual IReadOnlyList<string> LossParts => [];

    /// <summary>Runs the model on one micro-batch.</summary>
    public abstract FeatureSet Encode(TrainingBatch batch);

    /// <summary>Runs the losses on the features of the whole batch.</summary>
    public abstract LossOutput ComputeLoss(FeatureSet features);

    /// <summary>Sets the weight of a loss part (training stages).</summary>
    /// <exception cref="KeyNotFoundException">There is no such part.</exception>
    public virtual void SetLossWeight(string part, double weight) =>
        throw new KeyNotFoundException($"This objective's loss has no part \"{part}\" whose weight can change.");

    /// <summary>Releases the loss module (the model belongs to the caller).</summary>
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases the loss module.</summary>
    protected virtual void Dispose(bool disposing)
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        if (disposing)
        {
            Loss.Dispose();
        }
    }
}

/// <summary>
/// A CLIP-style objective for a dual encoder: image and report embeddings of the paired examples into a contrastive
/// <see cref="VlpLoss{TInput}"/> over <see cref="ContrastiveInput"/> (<see cref="ClipLoss"/>, <see cref="SigLipLoss"/>,
/// or a <see cref="CompositeLoss{TInput}"/> of them). Image-only rows are skipped by the loss.
/// </summary>
public sealed class DualEncoderObjective : TrainingObjective
{
    private readonly Func<Tensor, Tensor> _encodeVolumes;
    private readonly Func<Tensor, Tensor, Tensor> _encodeTexts;
    private readonly Func<Tensor> _logitScale;
    private readonly VlpLoss<ContrastiveInput> _loss;

    /// <summary>Creates the objective for <paramref name="model"/>.</summary>
    /// <param name="model">The dual encoder.</param>
    /// <param name="loss">The contrastive loss.</param>
    /// <param name="learnLogitBias">Give the loss a learnable logit bias (SigLIP's, initialised to -10): a parameter of the
    /// loss, not of the model, optimised with it.</param>
    public DualEncoderObjective(Modeling.DualEncoderModel model, VlpLoss<ContrastiveInput> loss, bool learnLogitBias = false)
        : this(model, model.EncodeImages, model.EncodeTexts, model.LogitScale, loss, learnLogitBias)
    {
    }

    /// <summary>Creates the objective for <paramref name="model"/>'s dual encoder.</summary>
    /// <param name="model">A model whose architecture is a dual encoder (<see cref="VisionLanguageModel.DualEncoder"/>).</param>
    /// <param name="loss">The contrastive loss.</param>
    /// <param name="learnLogitBias">Give the loss a learnable logit bias (SigLIP's).</param>
    public DualEncoderObjective(VisionLanguageModel model, VlpLoss<ContrastiveInput> loss, bool learnLogitBias = false)
        : this(Checked(model).Module, model.DualEncoder.EncodeImages, model.DualEncoder.EncodeTexts, model.DualEncoder.LogitScale, loss, learnLogitBias)
    {
    }

    /// <summary>Creates the objective from encoder functions (for dual encoders of other types).</summary>
    public DualEncoderObjective(nn.Module model, Func<Tensor, Tensor> encodeVolumes, Func<Tensor, Tensor, Tensor> encodeTexts, Func<Tensor> logitScale,
        VlpLoss<ContrastiveInput> loss, bool learnLogitBias = false)
        : base(model, new ContrastiveLossHolder(loss, learnLogitBias))
    {
        ArgumentNullException.ThrowIfNull(encodeVolumes);
        ArgumentNullException.ThrowIfNull(encodeTexts);
        ArgumentNullException.ThrowIfNull(logitScale);
        _encodeVolumes = encodeVolumes;
        _encodeTexts = encodeTexts;
        _logitScale = logitScale;
        _loss = loss;
    }

    private static VisionLanguageModel Checked(VisionLanguageModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return model;
    }

    /// <summary>The learnable logit bias, when the objective has one.</summary>
    public Parameter? LogitBias => ((ContrastiveLossHolder)Loss).LogitBias;

    /// <inheritdoc />
    public override IReadOnlyList<string> LossParts => _loss is CompositeLoss<ContrastiveInput> c ? c.PartNames : [];

    /// <inheritdoc />
    public override FeatureSet Encode(TrainingBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        if (batch.TextIds is null || batch.TextMask is null)
        {
            throw new ArgumentException("A contrastive image-report objective needs reports; this batch has none.", nameof(batch));
        }

        using var scope = NewDisposeScope();
        var paired = tensor(batch.Paired.ToArray(), device: batch.Volumes.device);
        var features = new FeatureSet(
        [
            new("image", _encodeVolumes(batch.Volumes)),
            new("text", _encodeTexts(batch.TextIds, batch.TextMask)),
            new("paired", paired),
        ]);
        return features.MoveToOuter(scope);
    }

    /// <inheritdoc />
    public override LossOutput ComputeLoss(FeatureSet features)
    {
        ArgumentNullException.ThrowIfNull(features);
        using var scope = NewDisposeScope();
        var paired = features["paired"];
        Tensor image = features["image"], text = features["text"];
        var count = paired.sum().ToInt64();
        if (count < 2)
        {
            throw new InvalidOperationException($"A contrastive loss needs at least two paired examples per batch; this one has {count}.");
        }

        if (count < paired.shape[0])
        {
            var rows = paired.nonzero().squeeze(1);
            image = image.index_select(0, rows);
            text = text.index_select(0, rows);
        }

        var output = _loss.call(new ContrastiveInput(image, text, _logitScale(), LogitBias));
        return output.MoveToOuter(scope);
    }

    /// <inheritdoc />
    public override void SetLossWeight(string part, double weight)
    {
        if (_loss is not CompositeLoss<ContrastiveInput> composite)
        {
            base.SetLossWeight(part, weight);
            return;
        }

        composite.SetWeight(part, weight);
    }

    /// <summary>Holds the loss and the loss-side learnable parameters as one module.</summary>
    private sealed class ContrastiveLossHolder : nn.Module
    {
#pragma warning disable IDE1006, SA1300 // state-dict names
        private readonly VlpLoss<ContrastiveInput> loss;
        private readonly Parameter? logit_bias;
#pragma warning restore IDE1006, SA1300

        public ContrastiveLossHolder(VlpLoss<ContrastiveInput> loss, bool learnBias)
            : base("contrastive_objective")
        {
            ArgumentNullException.ThrowIfNull(loss);
            this.loss = loss;
            logit_bias = learnBias ? new Parameter(full([], -10.0)) : null;
            RegisterComponents();
        }

        public Parameter? LogitBias => logit_bias;

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                loss.Dispose();
                logit_bias?.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}
