using MedVlp.Losses;
using MedVlp.Modeling;
using MedVlp.Text;
using MedVlp.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Architectures.Prior;

/// <summary>
/// PRIOR's pre-training objective for the <see cref="Trainer"/>: a batch's images (for the 2D model, the middle slice of
/// each volume along its first spatial axis) and tokenized reports go through <see cref="PriorModel.Encode"/>; the loss is
/// <see cref="PriorModel.ComputeLosses"/> with the current <see cref="Weights"/>. The loss parts are
/// <see cref="PriorLossWeights.Names"/>; a training stage sets them (see <see cref="PriorRecipe"/>), which also switches the
/// stage's computation (the prototype bank from stage 2, the reconstructions in stage 3). Sentences are found in the token
/// ids (<see cref="PriorModel.SentenceIndex"/>): a sentence ends with the tokenizer's "." (or "!" / "?").
/// </summary>
public sealed class PriorObjective : TrainingObjective
{
    private readonly PriorModel _model;
    private readonly HashSet<long> _sentenceEnds;
    private readonly HashSet<long> _special;

    /// <summary>Creates the objective.</summary>
    /// <param name="model">The model.</param>
    /// <param name="tokenizer">The tokenizer of the reports (for the sentence-ending and special token ids).</param>
    public PriorObjective(PriorModel model, TextTokenizer tokenizer)
        : base(model, new NoParameters())
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        _model = model;
        _special = [.. tokenizer.Encode("", 8).Select(i => (long)i), tokenizer.PaddingTokenId];
        _sentenceEnds = [.. PriorConfig.SentenceEnds(tokenizer).Select(i => (long)i)];
    }

    /// <summary>The current loss weights (stage 1's until a stage sets them).</summary>
    public PriorLossWeights Weights { get; private set; } = PriorLossWeights.Stage1;

    /// <inheritdoc />
    public override IReadOnlyList<string> LossParts => PriorLossWeights.Names;

    /// <inheritdoc />
    public override void SetLossWeight(string part, double weight) => Weights = Weights.With(part, weight);

    /// <summary>The model input of a batch: model-ready inputs (B x C x H x W for the 2D model, B x C x D x H x W for the 3D
    /// one, as the recipes' preprocessing makes them) as they are; for the 2D model, (B x C x Z x Y x X) volumes become
    /// their middle Z slice (B x C x Y x X).</summary>
    public Tensor ModelInput(Tensor volumes)
    {
        ArgumentNullException.ThrowIfNull(volumes);
        var dims = _model.Sizes.Image.SpatialDims;
        if (volumes.dim() == dims + 2)
        {
            return volumes.alias();
        }

        if (volumes.dim() != 5)
        {
            throw new ArgumentException($"Expected images (B x C x H x W) or volumes (B x C x Z x Y x X), got [{string.Join(", ", volumes.shape)}].", nameof(volumes));
        }

        return volumes.select(2, volumes.shape[2] / 2).contiguous();
    }

    /// <inheritdoc />
    public override FeatureSet Encode(TrainingBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        if (batch.TextIds is null || batch.TextMask is null || batch.Paired.Any(p => !p))
        {
            throw new ArgumentException("PRIOR needs a report for every image of the batch.", nameof(batch));
        }

        using var scope = NewDisposeScope();
        var index = PriorModel.SentenceIndex(batch.TextIds, batch.TextMask, _sentenceEnds, _special);
        using var encoding = _model.Encode(ModelInput(batch.Volumes), batch.TextIds, batch.TextMask, index);
        var features = new FeatureSet(
        [
            new("images", encoding.Images.alias()),
            new("local_image", encoding.LocalImage.alias()),
            new("global_image", encoding.GlobalImage.alias()),
            new("sentences", encoding.Sentences.alias()),
            new("sentence_mask", encoding.SentenceMask.alias()),
        ]);
        return features.MoveToOuter(scope);
    }

    /// <inheritdoc />
    public override LossOutput ComputeLoss(FeatureSet features)
    {
        ArgumentNullException.ThrowIfNull(features);
        var encoding = new PriorEncoding(features["images"], features["local_image"], features["global_image"], features["sentences"], features["sentence_mask"]);
        return _model.ComputeLosses(encoding, Weights);
    }

    /// <summary>The loss side of the objective: PRIOR's learnable parts all belong to the model.</summary>
    private sealed class NoParameters : nn.Module
    {
        public NoParameters()
            : base("prior_objective")
        {
        }
    }
}

/// <summary>The sizes of <see cref="PriorRecipe"/>.</summary>
public enum PriorRecipeSize
{
    /// <summary>The released schedule (epochs 20 / 30 / 100, batch 98 per process).</summary>
    Full,

    /// <summary>A CPU-sized run of the same three stages (steps instead of epochs, a higher learning rate).</summary>
    Tiny,
}

/// <summary>
/// PRIOR's three-stage pre-training as released (<c>configs/experiments/pre_train/train_prior.yaml</c>, <c>Prior.training_step</c>):
/// AdamW with weight decay 1e-6, a linear warm-up and cosine decay restarted per stage, and per stage its loss weights
/// (<see cref="PriorLossWeights.Stage1"/>, <see cref="PriorLossWeights.Stage2"/>, <see cref="PriorLossWeights.Stage3"/>).
/// </summary>
public static class PriorRecipe
{
    /// <summary>The released per-process batch size (98 on each of 6 GPUs).</summary>
    public const int FullBatchSize = 98;

    /// <summary>The batch of the CPU-sized recipe.</summary>
    public const int TinyBatchSize = 16;

    /// <summary>Stage-1 steps of the CPU-sized recipe; stages 2 and 3 run 4/15 of it each (150, 40, 40).</summary>
    public const long TinyStage1Steps = 150;

    /// <summary>The initial global and local temperature of the CPU-sized model (released: 0.01, tuned for pre-trained
    /// encoders; from random initialisation it collapses the tiny model's embeddings, see the README).</summary>
    public const double TinyTemperature = 0.2;

    /// <summary>Peak learning rate of the CPU-sized recipe's stages 1 and 2 (stage 3: half of it, as released).</summary>
    public const double TinyLearningRate = 1e-3;

    /// <summary>The warm-up share of each stage (released: 1 of 20, 1 of 30 and 5 of 100 epochs).</summary>
    public const double WarmupFraction = 0.05;

    /// <summary>The stages: released epochs 20, 30, 100 at peak rates 1e-5, 1e-5, 5e-6; CPU-sized: <paramref name="tinySteps"/>,
    /// then 4/15 of it for stages 2 and 3 (150, 40, 40 by default), at <see cref="TinyLearningRate"/>, the same, and half of it.</summary>
    /// <param name="size">Released or CPU-sized.</param>
    /// <param name="tinySteps">Stage-1 steps of the CPU-sized recipe.</param>
    public static IReadOnlyList<TrainingStage> Stages(PriorRecipeSize size, long tinySteps = TinyStage1Steps)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(tinySteps, 1);
        var full = size == PriorRecipeSize.Full;
        var later = Math.Max(1, tinySteps * 4 / 15);
        return
        [
            Stage("stage1", PriorLossWeights.Stage1, full ? 1e-5 : TinyLearningRate, full ? 20 : 0, full ? 0 : tinySteps),
            Stage("stage2", PriorLossWeights.Stage2, full ? 1e-5 : TinyLearningRate, full ? 30 : 0, full ? 0 : later),
            Stage("stage3", PriorLossWeights.Stage3, full ? 5e-6 : TinyLearningRate / 2, full ? 100 : 0, full ? 0 : later),
        ];
    }

    /// <summary>Trainer options of the recipe (the released warm-up is 1 of 20, 1 of 30 and 5 of 100 epochs: 5% of each stage here).</summary>
    /// <param name="size">Released or CPU-sized.</param>
    /// <param name="seed">The run seed.</param>
    /// <param name="outputDirectory">Checkpoints, metrics and plots; null for none.</param>
    /// <param name="tinySteps">Stage-1 steps of the CPU-sized recipe.</param>
    public static TrainerOptions Options(PriorRecipeSize size, int seed = 42, string? outputDirectory = null, long tinySteps = TinyStage1Steps) => new()
    {
        Optimizer = new OptimizerSettings { Type = "adamw", LearningRate = size == PriorRecipeSize.Full ? 1e-5 : TinyLearningRate, WeightDecay = 1e-6, Beta1 = 0.9, Beta2 = 0.999, Epsilon = 1e-8 },
        Schedule = LearningRateSchedule.WarmupCosine(WarmupFraction, 0),
        Stages = Stages(size, tinySteps),
        GradientClipNorm = 0, // the released trainer does not clip
        Seed = seed,
        OutputDirectory = outputDirectory,
    };

    /// <summary>The model of the CPU-sized recipes: <see cref="PriorConfig.Tiny"/> with room for whole synthetic reports (160
    /// tokens) and the initial temperatures <see cref="TinyTemperature"/>.</summary>
    /// <param name="vocabularySize">Rows of the word embeddings.</param>
    /// <param name="volumes">The 3D variant (64^3 volumes).</param>
    public static PriorConfig TinyConfig(int vocabularySize, bool volumes = false) => PriorConfig.Tiny(vocabularySize, volumes) with
    {
        Text = PriorConfig.Tiny().Text with { VocabSize = vocabularySize, MaxPositionEmbeddings = 160 },
        MaxTextTokens = 160,
        Temperature = TinyTemperature,
        LocalTemperature = TinyTemperature,
    };

    /// <summary>The recipe of <c>medvlp train</c>: <c>prior</c> / <c>prior3d</c> (CPU-sized) or <c>prior-full</c> /
    /// <c>prior3d-full</c> (released), with <see cref="Options"/>' optimizer, schedule and stages.</summary>
    /// <param name="size">Released or CPU-sized.</param>
    /// <param name="volumes">The 3D variant.</param>
    public static TrainingRecipe Recipe(PriorRecipeSize size, bool volumes = false)
    {
        var full = size == PriorRecipeSize.Full;
        var options = Options(size);
        return new TrainingRecipe
        {
            Name = (volumes ? PriorRecipeArchitecture.VolumeName : PriorConfig.ArchitectureName) + (full ? "-full" : ""),
            Description = full
                ? $"PRIOR as released{(volumes ? " on volumes (3D ResNet-50)" : "")}: ResNet-50 + BERT-base, three stages of 20 / 30 / 100 epochs at 1e-5 / 1e-5 / 5e-6 (stage 2: + 10 x prototype; stage 3: 10 x global + reconstructions), AdamW (wd 1e-6), 5% warm-up + cosine per stage, batch 98, no clipping."
                : string.Create(System.Globalization.CultureInfo.InvariantCulture, $"PRIOR, CPU-sized{(volumes ? ", 3D (64^3 volumes)" : " (64 x 64 slices)")}: the tiny model, the released three stages' loss weights, {TinyStage1Steps} / {TinyStage1Steps * 4 / 15} / {TinyStage1Steps * 4 / 15} steps at {TinyLearningRate:G2} / {TinyLearningRate:G2} / {TinyLearningRate / 2:G2}, initial temperatures {TinyTemperature} (released 0.01), AdamW (wd 1e-6), 5% warm-up + cosine per stage, batch {TinyBatchSize}."),
            Architecture = volumes ? PriorRecipeArchitecture.VolumeName : PriorConfig.ArchitectureName,
            Size = full ? ModelRegistry.Full : ModelRegistry.Tiny,
            Objectives = [new ObjectiveSettings { Name = "prior", Loss = "prior" }],
            Optimizer = options.Optimizer,
            Schedule = new ScheduleSettings { Type = "warmup_cosine", WarmupFraction = WarmupFraction, FinalFraction = 0 },
            GradientClipNorm = options.GradientClipNorm,
            Stages = [.. options.Stages.Select(s => new StageSettings { Name = s.Name, Steps = s.Steps, Epochs = s.Epochs, LearningRate = s.LearningRate, LossWeights = s.LossWeights, ResetOptimizer = s.ResetOptimizer })],
            Data = new DataSettings { BatchSize = full ? FullBatchSize : TinyBatchSize },
        };
    }

    private static TrainingStage Stage(string name, PriorLossWeights weights, double learningRate, int epochs, long steps) => new()
    {
        Name = name,
        Epochs = epochs,
        Steps = steps,
        LearningRate = learningRate,
        LossWeights = PriorLossWeights.Names.ToDictionary(n => n, n => weights[n]),

        // The released trainer builds a new optimizer (and schedule) for each stage.
        ResetOptimizer = true,
    };
}
