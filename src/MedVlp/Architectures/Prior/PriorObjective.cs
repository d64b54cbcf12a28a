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
    private static readonly string[] SentencePunctuation = [".", "!", "?"];
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
        _sentenceEnds = [.. SentencePunctuation.SelectMany(p => tokenizer.Encode(p, 8)).Select(i => (long)i).Where(i => !_special.Contains(i))];
        if (_sentenceEnds.Count == 0)
        {
            throw new ArgumentException("The tokenizer has no token for \".\", so reports cannot be split into sentences.", nameof(tokenizer));
        }
    }

    /// <summary>The current loss weights (stage 1's until a stage sets them).</summary>
    public PriorLossWeights Weights { get; private set; } = PriorLossWeights.Stage1;

    /// <inheritdoc />
    public override IReadOnlyList<string> LossParts => PriorLossWeights.Names;

    /// <inheritdoc />
    public override void SetLossWeight(string part, double weight) => Weights = Weights.With(part, weight);

    /// <summary>The model input of a batch of (B x C x Z x Y x X) volumes: the volumes themselves for the 3D model, their
    /// middle Z slice (B x C x Y x X) for the 2D one.</summary>
    public Tensor ModelInput(Tensor volumes)
    {
        ArgumentNullException.ThrowIfNull(volumes);
        if (volumes.dim() != 5)
        {
            throw new ArgumentException($"Expected volumes (B x C x Z x Y x X), got [{string.Join(", ", volumes.shape)}].", nameof(volumes));
        }

        return _model.Sizes.Image.SpatialDims == 3 ? volumes.alias() : volumes.select(2, volumes.shape[2] / 2).contiguous();
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

    /// <summary>The stages: released epochs 20, 30, 100 at peak rates 1e-5, 1e-5, 5e-6; tiny: <paramref name="tinySteps"/>
    /// steps each at 1e-3, 1e-3, 5e-4 (measured: 30 steps per stage help the linear probe; 300 per stage at these rates collapse the
    /// tiny model's global embeddings, and 1e-4 for 30 steps per stage changes nothing).</summary>
    /// <param name="size">Released or CPU-sized.</param>
    /// <param name="tinySteps">Steps per stage of the tiny recipe.</param>
    public static IReadOnlyList<TrainingStage> Stages(PriorRecipeSize size, long tinySteps = 40)
    {
        var full = size == PriorRecipeSize.Full;
        return
        [
            Stage("stage1", PriorLossWeights.Stage1, full ? 1e-5 : 1e-3, full ? 20 : 0, full ? 0 : tinySteps),
            Stage("stage2", PriorLossWeights.Stage2, full ? 1e-5 : 1e-3, full ? 30 : 0, full ? 0 : tinySteps),
            Stage("stage3", PriorLossWeights.Stage3, full ? 5e-6 : 5e-4, full ? 100 : 0, full ? 0 : tinySteps),
        ];
    }

    /// <summary>Trainer options of the recipe (the released warm-up is 1 of 20, 1 of 30 and 5 of 100 epochs: 5% of each stage here).</summary>
    /// <param name="size">Released or CPU-sized.</param>
    /// <param name="seed">The run seed.</param>
    /// <param name="outputDirectory">Checkpoints, metrics and plots; null for none.</param>
    /// <param name="tinySteps">Steps per stage of the tiny recipe.</param>
    public static TrainerOptions Options(PriorRecipeSize size, int seed = 42, string? outputDirectory = null, long tinySteps = 40) => new()
    {
        Optimizer = new OptimizerSettings { Type = "adamw", LearningRate = size == PriorRecipeSize.Full ? 1e-5 : 1e-3, WeightDecay = 1e-6, Beta1 = 0.9, Beta2 = 0.999, Epsilon = 1e-8 },
        Schedule = LearningRateSchedule.WarmupCosine(0.05, 0),
        Stages = Stages(size, tinySteps),
        GradientClipNorm = 0, // the released trainer does not clip
        Seed = seed,
        OutputDirectory = outputDirectory,
    };

    private static TrainingStage Stage(string name, PriorLossWeights weights, double learningRate, int epochs, long steps) => new()
    {
        Name = name,
        Epochs = epochs,
        Steps = steps,
        LearningRate = learningRate,
        LossWeights = PriorLossWeights.Names.ToDictionary(n => n, n => weights[n]),
    };
}
