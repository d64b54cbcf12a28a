using MedVlp.Losses;
using MedVlp.Volumes;

namespace MedVlp.Training;

/// <summary>Options of <see cref="ContrastiveTrainer"/>. The defaults suit the small demo model; MedBLIP's recipe is
/// AdamW lr 2e-5, weight decay 1e-4, batch 7, cosine schedule with 10 % warm-up, clipping 1.0, seed 42.</summary>
public sealed class ContrastiveTrainerOptions
{
    /// <summary>Passes over the training pairs. Default 30.</summary>
    public int Epochs { get; init; } = 30;

    /// <summary>Pairs per step; the last incomplete batch of an epoch is dropped (as open_clip does). Default 32.</summary>
    public int BatchSize { get; init; } = 32;

    /// <summary>Peak learning rate. Default 1e-3.</summary>
    public double LearningRate { get; init; } = 1e-3;

    /// <summary>The learning rate at the end of the cosine decay, as a fraction of the peak. Default 0.</summary>
    public double FinalLearningRateFraction { get; init; }

    /// <summary>Fraction of the steps spent in linear warm-up. Default 0.1.</summary>
    public double WarmupFraction { get; init; } = 0.1;

    /// <summary>AdamW weight decay of weight matrices; biases, norms, embeddings of position/class/latent tokens and the logit scale get none. Default 0.05.</summary>
    public double WeightDecay { get; init; } = 0.05;

    /// <summary>AdamW betas. Default (0.9, 0.98), CLIP's.</summary>
    public (double Beta1, double Beta2) Betas { get; init; } = (0.9, 0.98);

    /// <summary>Largest global gradient norm (clipped above). Default 1.0.</summary>
    public double GradientClipNorm { get; init; } = 1.0;

    /// <summary>Seed of shuffling, text augmentation and dropout. Default 42.</summary>
    public int Seed { get; init; } = 42;

    /// <summary>Probability that a report is replaced, for one step, by a random non-empty subset of its sentences (kept in
    /// order): teaches the text encoder that a short prompt and a full report can mean the same. Default 0.5; 0 disables it.</summary>
    public double SentenceSubsetProbability { get; init; } = 0.5;

    /// <summary>Options of the CLIP loss (label smoothing, ...). Default: plain InfoNCE.</summary>
    public ClipLossOptions? Loss { get; init; }

    /// <summary>An optional random augmentation applied to each volume before the model's preprocessing, every epoch
    /// (for example a <c>TransformPipeline</c> of random flips); <see langword="null"/> to preprocess once and cache.</summary>
    public Func<Volume, Random, Volume>? VolumeAugmentation { get; init; }

    internal void Validate()
    {
        if (Epochs <= 0 || BatchSize < 2 || !(LearningRate > 0) || FinalLearningRateFraction is < 0 or > 1 || WarmupFraction is < 0 or >= 1 ||
            WeightDecay < 0 || Betas.Beta1 is < 0 or >= 1 || Betas.Beta2 is < 0 or >= 1 || !(GradientClipNorm > 0) || SentenceSubsetProbability is < 0 or > 1)
        {
            throw new ArgumentException("Trainer options out of range: epochs > 0, batch size >= 2, learning rate > 0, fractions in [0, 1), clip norm > 0.");
        }
    }
}

/// <summary>A volume and the report that describes it.</summary>
/// <param name="Volume">The volume (any shape; the model's preprocessing is applied).</param>
/// <param name="Text">Its report.</param>
public sealed record VolumeTextPair(Volume Volume, string Text);

/// <summary>Progress of training, reported after every step.</summary>
/// <param name="Step">Steps done (1-based).</param>
/// <param name="TotalSteps">Steps in the whole run.</param>
/// <param name="Epoch">The current epoch (1-based).</param>
/// <param name="Loss">The loss of this step.</param>
/// <param name="LearningRate">The learning rate used in this step.</param>
/// <param name="LogitScale">exp(logit_scale) after this step.</param>
public sealed record TrainingProgress(int Step, int TotalSteps, int Epoch, double Loss, double LearningRate, double LogitScale);

/// <summary>What a training run did: one entry per step.</summary>
/// <param name="Losses">The loss of every step.</param>
/// <param name="LearningRates">The learning rate of every step.</param>
/// <param name="StepsPerEpoch">Steps in one epoch.</param>
/// <param name="BatchSize">Pairs per step (an untrained model's CLIP loss is about ln(batch size)).</param>
public sealed record TrainingHistory(IReadOnlyList<double> Losses, IReadOnlyList<double> LearningRates, int StepsPerEpoch, int BatchSize);
