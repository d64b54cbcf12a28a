namespace MedVlp.Training;

/// <summary>Options of a <see cref="Trainer"/>.</summary>
public sealed class TrainerOptions
{
    /// <summary>The optimizer (AdamW by default).</summary>
    public OptimizerSettings Optimizer { get; init; } = new();

    /// <summary>The learning-rate schedule, applied within each stage (warm-up + cosine by default).</summary>
    public LearningRateSchedule Schedule { get; init; } = LearningRateSchedule.WarmupCosine();

    /// <summary>Optimisation steps of the whole run; 0 to take them from <see cref="Epochs"/>.</summary>
    public long Steps { get; init; }

    /// <summary>Passes over the data when <see cref="Steps"/> is 0 (default 1).</summary>
    public int Epochs { get; init; } = 1;

    /// <summary>Micro-batches per optimisation step (default 1). N micro-batches of B give the update of one batch of N x B:
    /// features are computed for all micro-batches first, the loss sees all of them (so contrastive negatives span the whole
    /// accumulated batch), and each micro-batch is then back-propagated with its slice of the feature gradient.</summary>
    public int AccumulationSteps { get; init; } = 1;

    /// <summary>Largest global gradient norm over every trainable parameter; 0 or less disables clipping (default 1.0).</summary>
    public double GradientClipNorm { get; init; } = 1.0;

    /// <summary>Training stages (PRIOR's three, for example): each runs for its steps with its own peak learning rate and loss
    /// weights, the schedule restarting in each. Empty for one stage over the whole run.</summary>
    public IReadOnlyList<TrainingStage> Stages { get; init; } = [];

    /// <summary>Decay of an exponential moving average of the trainable weights (for example 0.999); null for none.</summary>
    public double? EmaDecay { get; init; }

    /// <summary>The seed of libtorch's generator (dropout, noise) at the start of the run (default 42).</summary>
    public int Seed { get; init; } = 42;

    /// <summary>Folder for checkpoints, <c>metrics.jsonl</c> and plots; null to write nothing.</summary>
    public string? OutputDirectory { get; init; }

    /// <summary>Write a checkpoint every this many steps (and at the end); 0 for only at the end (default 0).</summary>
    public int CheckpointEvery { get; init; }

    /// <summary>How many of the latest checkpoints to keep (default 2); the best by <see cref="BestMetric"/> is kept besides.</summary>
    public int KeepLastCheckpoints { get; init; } = 2;

    /// <summary>Continue from the latest complete checkpoint in <see cref="OutputDirectory"/> when there is one.</summary>
    public bool Resume { get; init; }

    /// <summary>Evaluate every this many steps (and at the end) when an evaluation is given; 0 for only at the end.</summary>
    public int EvaluateEvery { get; init; }

    /// <summary>The evaluation metric that picks the best checkpoint and drives early stopping (default <c>val/loss</c>).</summary>
    public string BestMetric { get; init; } = "val/loss";

    /// <summary>Whether a larger <see cref="BestMetric"/> is better (accuracy) or a smaller one (loss, the default).</summary>
    public bool HigherIsBetter { get; init; }

    /// <summary>Stop after this many evaluations without improvement of <see cref="BestMetric"/>; 0 never stops early.</summary>
    public int EarlyStoppingPatience { get; init; }

    /// <summary>Redraw the plots every this many steps (default 50; they are always drawn at the end).</summary>
    public int PlotEvery { get; init; } = 50;

    /// <summary>Names the parameters of a module that take no weight decay; defaults to what the modules declare
    /// (<see cref="Modeling.Blocks.NoWeightDecay.ParameterNames"/>).</summary>
    public Func<TorchSharp.torch.nn.Module, IReadOnlySet<string>>? NoWeightDecay { get; init; }

    /// <summary>
    /// The data-parallel job (<see cref="Distributed.ProcessGroup.Create"/>); null or a single process trains alone. With
    /// several processes every rank holds a replica: rank 0's weights are broadcast at the start, gradients are averaged
    /// over the ranks after the backward (<see cref="Distributed.DataParallel"/>), only rank 0 writes checkpoints,
    /// <c>metrics.jsonl</c> and plots, and on resume every rank reads rank 0's latest checkpoint (a shared folder; the same
    /// world size). The data must be sharded by rank and the losses given a <see cref="Distributed.ProcessGroupGatherer"/>.
    /// </summary>
    public Distributed.ProcessGroup? ProcessGroup { get; init; }

    internal void Validate()
    {
        if (Steps < 0 || (Steps == 0 && Epochs < 1) || AccumulationSteps < 1 || CheckpointEvery < 0 || KeepLastCheckpoints < 1 || EvaluateEvery < 0 ||
            EarlyStoppingPatience < 0 || PlotEvery < 1 || EmaDecay is < 0 or >= 1 || double.IsNaN(GradientClipNorm))
        {
            throw new ArgumentException(
                "Trainer options out of range: steps >= 0 (or epochs >= 1), accumulation >= 1, checkpoint/evaluation intervals >= 0, keep >= 1, plot interval >= 1, EMA decay in [0, 1).");
        }

        if (Optimizer.Problem() is { } p)
        {
            throw new ArgumentException($"Optimizer setting \"{p.Field}\": {p.Message}.");
        }

        foreach (var s in Stages)
        {
            if (s.Steps < 1 && s.Epochs < 1)
            {
                throw new ArgumentException($"Training stage \"{s.Name}\" needs steps or epochs >= 1.");
            }
        }
    }
}

/// <summary>One stage of a staged recipe.</summary>
public sealed record TrainingStage
{
    /// <summary>The stage's name (for logs).</summary>
    public string Name { get; init; } = "stage";

    /// <summary>Optimisation steps of the stage (or use <see cref="Epochs"/>).</summary>
    public long Steps { get; init; }

    /// <summary>Epochs of the stage when <see cref="Steps"/> is 0.</summary>
    public int Epochs { get; init; }

    /// <summary>The stage's peak learning rate; null keeps the optimizer's.</summary>
    public double? LearningRate { get; init; }

    /// <summary>Loss-part weights set when the stage starts (parts not named keep their weight).</summary>
    public IReadOnlyDictionary<string, double> LossWeights { get; init; } = new Dictionary<string, double>();

    /// <summary>
    /// Start the stage with a new optimizer (no moments, step counts or momentum from the stages before), as PRIOR's
    /// released trainer builds a new optimizer per stage. Default false: the state carries over.
    /// </summary>
    public bool ResetOptimizer { get; init; }
}

/// <summary>Progress after every optimisation step.</summary>
/// <param name="Step">Steps done (1-based).</param>
/// <param name="TotalSteps">Steps of the whole run.</param>
/// <param name="Epoch">The epoch the step's data came from (1-based).</param>
/// <param name="Stage">The stage's name.</param>
/// <param name="Losses">The total (<c>total</c>) and every named loss term of this step.</param>
/// <param name="LearningRate">The peak-group learning rate of this step.</param>
/// <param name="ExamplesPerSecond">Throughput of this step (examples of the whole accumulated batch).</param>
/// <param name="Evaluation">The metrics of an evaluation that ran after this step, or null.</param>
public sealed record TrainingProgress(
    long Step, long TotalSteps, int Epoch, string Stage, IReadOnlyDictionary<string, double> Losses, double LearningRate, double ExamplesPerSecond,
    IReadOnlyDictionary<string, double>? Evaluation);

/// <summary>The outcome of <see cref="Trainer.Fit"/>.</summary>
/// <param name="StepsDone">Optimisation steps completed (including those before a resume).</param>
/// <param name="ResumedFromStep">The step the run resumed from (0 for a fresh run).</param>
/// <param name="StoppedEarly">Whether early stopping ended the run.</param>
/// <param name="LastLosses">The losses of the last step.</param>
/// <param name="BestMetric">The best value of the chosen metric, or null without evaluations.</param>
/// <param name="LastEvaluation">The last evaluation's metrics, or null.</param>
/// <param name="History">Loss terms and learning rate of every step this process ran.</param>
public sealed record TrainingSummary(
    long StepsDone, long ResumedFromStep, bool StoppedEarly, IReadOnlyDictionary<string, double> LastLosses, double? BestMetric,
    IReadOnlyDictionary<string, double>? LastEvaluation, IReadOnlyList<TrainingProgress> History);
