using MedVlp.Architectures.MFlag;
using MedVlp.Losses;
using MedVlp.Modeling;
using MedVlp.Training;
using MedVlp.Volumes.Transforms;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Architectures.LvmMed;

/// <summary>
/// LVM-Med's self-supervised objective for the <see cref="Trainer"/>: both augmented views of every image
/// (<see cref="TrainingBatch.Volumes"/> and <see cref="TrainingBatch.SecondViews"/>) run through the encoder and projector,
/// each view separately (its own batch statistics); the <see cref="GraphMatchingLoss"/> builds a k-NN graph per view,
/// refines it by message passing, and matches view 1 to view 2 (term <c>hamming</c>, plus <c>contrastive</c> when the
/// loss has a contrastive weight). No reports are needed. With <c>freezeEncoderNormStatistics</c> the encoder's
/// batch-norm layers keep their running statistics while training (<see cref="FrozenBatchNormStatistics"/>; the tiny
/// recipe's setting).
/// </summary>
public sealed class LvmMedObjective : TrainingObjective
{
    private readonly LvmMedModel _model;
    private readonly GraphMatchingLoss _loss;
    private readonly bool _local;
    private readonly FrozenBatchNormStatistics? _encoderNorms;

    /// <summary>Creates the objective.</summary>
    /// <param name="model">The model.</param>
    /// <param name="loss">The graph-matching loss (its message-passing layer trains with the model); null for <see cref="LvmMedModel.CreateLoss"/>.</param>
    /// <param name="useLocalFeatures">Give the loss the <c>layer4</c> maps for the local vertex affinity (when its weight is above 0).</param>
    /// <param name="freezeEncoderNormStatistics">Keep the encoder's batch-norm layers in <c>eval()</c> mode while training
    /// (false: batch statistics).</param>
    public LvmMedObjective(LvmMedModel model, GraphMatchingLoss? loss = null, bool? useLocalFeatures = null, bool freezeEncoderNormStatistics = false)
        : this(model, loss ?? Checked(model).CreateLoss(), useLocalFeatures ?? model.Sizes.Matching.LocalWeight > 0, freezeEncoderNormStatistics)
    {
    }

    private LvmMedObjective(LvmMedModel model, GraphMatchingLoss loss, bool local, bool freezeEncoderNormStatistics)
        : base(model, loss)
    {
        _model = model;
        _loss = loss;
        _local = local;
        _encoderNorms = freezeEncoderNormStatistics ? new FrozenBatchNormStatistics(model.ImageEncoder) : null;
    }

    /// <summary>Whether the encoder's batch-norm statistics stay fixed during training.</summary>
    public bool FreezesEncoderNormStatistics => _encoderNorms is { Count: > 0 };

    /// <summary>The loss.</summary>
    public GraphMatchingLoss MatchingLoss => _loss;

    /// <inheritdoc />
    public override FeatureSet Encode(TrainingBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        if (batch.SecondViews is null)
        {
            throw new ArgumentException("LVM-Med matches two augmented views of every image; this batch has one (set the data's views to 2).", nameof(batch));
        }

        // The trainer switches every module with trainable parameters to train() (at the start and after each evaluation).
        _encoderNorms?.Apply();
        using var scope = NewDisposeScope();
        using var first = _model.Forward(batch.Volumes);
        using var second = _model.Forward(batch.SecondViews);
        List<KeyValuePair<string, Tensor>> items = [new("z1", first.Embedding.alias()), new("z2", second.Embedding.alias())];
        if (_local)
        {
            items.Add(new("local1", first.Local.alias()));
            items.Add(new("local2", second.Local.alias()));
        }

        return new FeatureSet(items).MoveToOuter(scope);
    }

    /// <inheritdoc />
    public override LossOutput ComputeLoss(FeatureSet features)
    {
        ArgumentNullException.ThrowIfNull(features);
        var input = _local
            ? new GraphMatchingInput(features["z1"], features["z2"], features["local1"], features["local2"])
            : new GraphMatchingInput(features["z1"], features["z2"]);
        return _loss.call(input);
    }

    private static LvmMedModel Checked(LvmMedModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return model;
    }
}

/// <summary>LVM-Med for <see cref="TrainingRecipe"/> (<c>architecture: "lvmmed"</c>, loss <c>graph_matching</c>, two views).</summary>
internal sealed class LvmMedRecipeArchitecture : RecipeArchitecture
{
    public override string Name => LvmMedConfig.ArchitectureName;

    /// <summary>LVM-Med's recipes: CPU-sized and full size (the pre-training recipe was never released: MedVlp's defaults).</summary>
    public override IReadOnlyList<TrainingRecipe> Recipes { get; } =
    [
        new()
        {
            Name = "lvmmed",
            Description = "LVM-Med, CPU-sized: the tiny ResNet 2D + projector, two augmented views, k-NN graphs (k 5), message passing, second-order graph matching (Frank-Wolfe, black-box lambda 80) plus a contrastive term (weight 1), frozen encoder batch-norm statistics, AdamW 5e-3, warm-up + cosine, batch 32.",
            Architecture = "lvmmed",
            Size = "tiny",
            Objectives = [new ObjectiveSettings { Name = "graph_matching", Loss = "graph_matching" }],
            Optimizer = new OptimizerSettings { LearningRate = 5e-3, WeightDecay = 1e-4 },
            Epochs = 12,
            Data = new DataSettings { BatchSize = 32 },
        },
        new()
        {
            Name = "lvmmed-full",
            Description = "LVM-Med at full size: ResNet-50 (3 channels, 224) + projector 2048 -> 256, two views, graph matching; the pre-training recipe was never released: AdamW 1e-4 (wd 1e-5), warm-up + cosine, batch 64, 100 epochs are MedVlp's defaults.",
            Architecture = "lvmmed",
            Size = "full",
            Objectives = [new ObjectiveSettings { Name = "graph_matching", Loss = "graph_matching" }],
            Optimizer = new OptimizerSettings { LearningRate = 1e-4, WeightDecay = 1e-5 },
            Epochs = 100,
            Data = new DataSettings { BatchSize = 64 },
        },
    ];

    public override IReadOnlyList<string> Losses => ["graph_matching"];

    public override bool NeedsReports => false;

    public override int Views => 2;

    public override ArchitectureConfig ModelConfig(string size, int vocabularySize) => size == ModelRegistry.Full ? LvmMedConfig.Full() : LvmMedConfig.Tiny();

    public override TransformPipeline Preprocessing(ArchitectureConfig config)
    {
        var c = (LvmMedConfig)config;
        if (c.Image.SpatialDims == 3)
        {
            return TrainingRecipe.Preprocessing(c.ImageSize);
        }

        return Slices.Pipeline(c.ImageSize, c.Image.InChannels, "lvmmed");
    }

    /// <summary>The views: random flips in plane, a small affine (rotation up to 15 degrees, in the slice's plane for 2D
    /// inputs; scaling up to 15 %; translation up to 8 mm), gamma, intensity scale and shift, Gaussian noise and blur, on
    /// the preprocessed [0, 1] image (the paper's augmentations are not published in full; these keep the anatomy). The
    /// affine takes away what tells two views of one case apart from other cases without anatomy: head position, pose
    /// and size.</summary>
    public override TransformPipeline DefaultAugmentation(ArchitectureConfig config) => new(
    [
        new RandomFlip { I = true, J = true, K = false, AxisProbability = 0.5 },
        new RandomAffine { MaxRotationDegrees = 15, MaxScale = 0.15, MaxTranslationMm = 8, FillWithMinimum = true, Probability = 0.8 },
        new RandomGamma { GammaMin = 0.7, GammaMax = 1.5, Probability = 0.8 },
        new RandomIntensityScale { MaxFactor = 0.2, Probability = 0.8 },
        new RandomIntensityShift { MaxOffset = 0.1, Probability = 0.8 },
        new RandomGaussianBlur { SigmaMin = 0.3, SigmaMax = 1.0, Probability = 0.3 },
        new RandomGaussianNoise { Std = 0.05, RandomStd = true, Probability = 0.5 },
    ], "lvmmed-views");

    public override TrainingObjective CreateObjective(TrainingRecipe recipe, VisionLanguageModel model, Distributed.ProcessGroup? group)
    {
        if (group is { WorldSize: > 1 })
        {
            throw new NotSupportedException("The LVM-Med recipe runs in one process (its graphs are built over the local batch).");
        }

        var m = (LvmMedModel)model.Module;
        return new LvmMedObjective(m, m.CreateLoss(seed: recipe.Seed), freezeEncoderNormStatistics: recipe.Size != ModelRegistry.Full);
    }
}
