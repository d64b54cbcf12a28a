using MedVlp.Losses;
using MedVlp.Modeling;
using MedVlp.Training;
using MedVlp.Volumes.Transforms;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Architectures.MFlag;

/// <summary>
/// M-FLAG's pre-training objective for the <see cref="Trainer"/>: the image encoder and both projectors run on the batch,
/// the frozen language model under <c>no_grad</c>; the loss is <see cref="OrthogonalityLoss"/> on the raw pooled image feature
/// plus <see cref="AlignmentLoss"/> between the projections (terms <c>orthogonality</c>, <c>alignment</c>). Every example needs
/// a report. Batch norm runs on the micro-batch, so use one micro-batch per step (the released trainer's setting).
/// </summary>
/// <remarks>
/// With <c>freezeImageNormStatistics</c> the image encoder's batch-norm layers run in <c>eval()</c> mode during training:
/// they normalise with their running statistics, which then never change, and only their scale and shift train (the
/// "frozen batch norm" of detection fine-tuning). The released code trains from ImageNet weights, whose statistics are
/// already meaningful, with batch statistics; a randomly initialised encoder trained for a few dozen steps does better
/// with frozen statistics (see the <c>mflag</c> recipe), and its training and inference forwards are then the same function.
/// </remarks>
public sealed class MFlagObjective : TrainingObjective
{
    private readonly MFlagModel _model;
    private readonly LossPair _losses;
    private readonly FrozenBatchNormStatistics? _imageNorms;

    /// <summary>Creates the objective.</summary>
    /// <param name="model">The model (its language model frozen by <see cref="MFlagModel.DefaultFreeze"/>).</param>
    /// <param name="orthogonality">The orthogonality loss (null: the released form, lambda 0.0051, halved).</param>
    /// <param name="alignment">The alignment loss (null: the released form).</param>
    /// <param name="freezeImageNormStatistics">Keep the image encoder's batch-norm layers in <c>eval()</c> mode while
    /// training (false: batch statistics, as released).</param>
    public MFlagObjective(MFlagModel model, OrthogonalityLoss? orthogonality = null, AlignmentLoss? alignment = null, bool freezeImageNormStatistics = false)
        : this(model, new LossPair(orthogonality ?? new OrthogonalityLoss(), alignment ?? new AlignmentLoss()), freezeImageNormStatistics)
    {
    }

    private MFlagObjective(MFlagModel model, LossPair losses, bool freezeImageNormStatistics)
        : base(model, losses)
    {
        _model = model;
        _losses = losses;
        _imageNorms = freezeImageNormStatistics ? new FrozenBatchNormStatistics(model.ImageEncoder) : null;
    }

    /// <summary>Whether the image encoder's batch-norm statistics stay fixed during training.</summary>
    public bool FreezesImageNormStatistics => _imageNorms is { Count: > 0 };

    /// <inheritdoc />
    public override FeatureSet Encode(TrainingBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        if (batch.TextIds is null || batch.TextMask is null || batch.Paired.Any(p => !p))
        {
            throw new ArgumentException("M-FLAG aligns every image with its report; this batch has examples without one.", nameof(batch));
        }

        // The trainer switches every module with trainable parameters to train() (at the start and after each evaluation).
        _imageNorms?.Apply();

        using var scope = NewDisposeScope();
        using var output = _model.Forward(batch.Volumes, batch.TextIds, batch.TextMask);
        var features = new FeatureSet(
        [
            new("feature", output.ImageFeature.alias()),
            new("image", output.ImageEmbedding.alias()),
            new("text", output.TextEmbedding.alias()),
        ]);
        return features.MoveToOuter(scope);
    }

    /// <inheritdoc />
    public override LossOutput ComputeLoss(FeatureSet features)
    {
        ArgumentNullException.ThrowIfNull(features);
        using var output = new MFlagOutput(features["feature"].alias(), features["image"].alias(), features["text"].alias());
        return MFlagModel.Loss(output, _losses.Orthogonality, _losses.Alignment);
    }

    /// <summary>The two losses as one module (no parameters of their own).</summary>
    private sealed class LossPair : nn.Module
    {
#pragma warning disable IDE1006, SA1300 // module names
        private readonly OrthogonalityLoss orthogonality;
        private readonly AlignmentLoss alignment;
#pragma warning restore IDE1006, SA1300

        public LossPair(OrthogonalityLoss orthogonality, AlignmentLoss alignment)
            : base("mflag_objective")
        {
            this.orthogonality = orthogonality;
            this.alignment = alignment;
            RegisterComponents();
        }

        public OrthogonalityLoss Orthogonality => orthogonality;

        public AlignmentLoss Alignment => alignment;
    }
}

/// <summary>M-FLAG for <see cref="TrainingRecipe"/> (<c>architecture: "mflag"</c>, loss <c>mflag</c>): 2D inputs from
/// X-rays, images or the middle axial slice of a volume.</summary>
internal sealed class MFlagRecipeArchitecture : RecipeArchitecture
{
    public override string Name => MFlagConfig.ArchitectureName;

    /// <summary>M-FLAG's recipes: CPU-sized and as released (full size).</summary>
    public override IReadOnlyList<TrainingRecipe> Recipes { get; } =
    [
        new()
        {
            Name = "mflag",
            Description = "M-FLAG, CPU-sized: the tiny model (ResNet 2D, frozen BERT), orthogonality + alignment, AdamW 1e-3 (wd 0.05), cosine warm restarts (first cycle 40% of the run), batch 32, 2D slices; the image encoder's batch-norm statistics stay frozen at initialisation.",
            Architecture = "mflag",
            Size = "tiny",
            Objectives = [new ObjectiveSettings { Name = "mflag", Loss = "mflag" }],
            Optimizer = new OptimizerSettings { LearningRate = 1e-3, WeightDecay = 0.05 },
            Schedule = new ScheduleSettings { Type = "cosine_restarts", FirstCycleFraction = 0.4, MinimumRate = 1e-8 },
            GradientClipNorm = 0,
            Epochs = 12,
            Data = new DataSettings { BatchSize = 32 },
        },
        new()
        {
            Name = "mflag-full",
            Description = "M-FLAG as released: ResNet-50 + frozen BERT-base, AdamW 2e-5 (wd 0.05), CosineAnnealingWarmRestarts (T_0 = 40% of the run, eta_min 1e-8), batch 512, 50 epochs, no clipping.",
            Architecture = "mflag",
            Size = "full",
            Objectives = [new ObjectiveSettings { Name = "mflag", Loss = "mflag" }],
            Optimizer = new OptimizerSettings { LearningRate = 2e-5, WeightDecay = 0.05, Beta2 = 0.999, Epsilon = 1e-8 },
            Schedule = new ScheduleSettings { Type = "cosine_restarts", FirstCycleFraction = 0.4, MinimumRate = 1e-8 },
            GradientClipNorm = 0,
            Epochs = 50,
            Data = new DataSettings { BatchSize = 512 },
        },
    ];

    public override IReadOnlyList<string> Losses => ["mflag"];

    public override ArchitectureConfig ModelConfig(string size, int vocabularySize) =>
        size == ModelRegistry.Full ? MFlagConfig.Full(vocabularySize) : MFlagConfig.Tiny(vocabularySize);

    public override bool TakesTextModel => true;

    protected override ArchitectureConfig WithTextEncoder(ArchitectureConfig config, BertConfig text)
    {
        var c = (MFlagConfig)config;
        return c with { Text = text, MaxTextTokens = Math.Min(c.MaxTextTokens, text.MaxPositionEmbeddings) };
    }

    public override TransformPipeline Preprocessing(ArchitectureConfig config)
    {
        var c = (MFlagConfig)config;
        return Slices.Pipeline(c.ImageSize, c.Image.InChannels, "mflag");
    }

    public override TrainingObjective CreateObjective(TrainingRecipe recipe, VisionLanguageModel model, Distributed.ProcessGroup? group)
    {
        if (group is { WorldSize: > 1 })
        {
            throw new NotSupportedException("The M-FLAG recipe runs in one process (its batch norm and orthogonality loss see the local batch).");
        }

        ArgumentNullException.ThrowIfNull(recipe);
        var m = (MFlagModel)model.Module;
        m.Apply(MFlagModel.DefaultFreeze);
        m.CacheFrozenTextOutputs = true;
        // The tiny encoder starts from random weights and trains for a few dozen steps: its batch-norm statistics stay at
        // their initial values (mean 0, variance 1) and only scale and shift train. Batch statistics (as released, from
        // ImageNet weights) lose the random encoder's separation of the synthetic diagnoses (README, M-FLAG).
        return new MFlagObjective(m, freezeImageNormStatistics: recipe.Size != ModelRegistry.Full);
    }
}

/// <summary>The 2D preprocessing shared by the ResNet-50 recipes: the middle slice of a volume (an image stays as it is),
/// resized to S x S as the released code's <c>Resize((S, S))</c>, min-max scaled to [0, 1], repeated into 3 channels for an RGB encoder.</summary>
internal static class Slices
{
    public static TransformPipeline Pipeline(int size, int channels, string name)
    {
        List<VolumeTransform> steps =
        [
            new ExtractSlice { Axis = SliceAxis.K },
            new ResampleToShape { Shape = new Volumes.VolumeShape(size, size, 1) },
            new MinMaxNormalize { OutputMin = 0, OutputMax = 1 },
        ];
        if (channels > 1)
        {
            steps.Add(new RepeatChannels { Channels = channels });
        }

        return new TransformPipeline(steps, $"{name}-2d-{size}");
    }
}
