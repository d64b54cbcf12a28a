using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MedVlp.Training;

/// <summary>The optimizer of a training run (JSON-serialisable, part of a <see cref="TrainingRecipe"/>).</summary>
public sealed record OptimizerSettings
{
    /// <summary><c>adamw</c> (default) or <c>sgd</c> (with momentum).</summary>
    public string Type { get; init; } = "adamw";

    /// <summary>Peak learning rate (default 1e-3).</summary>
    public double LearningRate { get; init; } = 1e-3;

    /// <summary>Decoupled weight decay of the parameters that take it (default 0.05).</summary>
    public double WeightDecay { get; init; } = 0.05;

    /// <summary>AdamW beta1 (default 0.9).</summary>
    public double Beta1 { get; init; } = 0.9;

    /// <summary>AdamW beta2 (default 0.98, CLIP's).</summary>
    public double Beta2 { get; init; } = 0.98;

    /// <summary>AdamW epsilon (default 1e-6, open_clip's).</summary>
    public double Epsilon { get; init; } = 1e-6;

    /// <summary>SGD momentum (default 0.9).</summary>
    public double Momentum { get; init; } = 0.9;

    /// <summary>SGD Nesterov momentum (default false).</summary>
    public bool Nesterov { get; init; }

    /// <summary>The problem with these settings, as (JSON field, message), or null when they are valid.</summary>
    public (string Field, string Message)? Problem()
    {
        if (Type is not ("adamw" or "sgd"))
        {
            return ("type", $"unknown optimizer \"{Type}\"; expected \"adamw\" or \"sgd\"");
        }

        if (!(LearningRate > 0) || !double.IsFinite(LearningRate))
        {
            return ("learning_rate", $"must be a positive number, got {LearningRate}");
        }

        if (!(WeightDecay >= 0))
        {
            return ("weight_decay", $"must be >= 0, got {WeightDecay}");
        }

        if (Beta1 is < 0 or >= 1 || Beta2 is < 0 or >= 1)
        {
            return ("beta1", $"betas must be in [0, 1), got ({Beta1}, {Beta2})");
        }

        if (!(Epsilon > 0))
        {
            return ("epsilon", $"must be positive, got {Epsilon}");
        }

        return Momentum is < 0 or >= 1 ? ("momentum", $"must be in [0, 1), got {Momentum}") : null;
    }

    /// <summary>Creates the optimizer over <paramref name="parameters"/>: two groups, with and without weight decay.</summary>
    public OptimizerHelper Create(TrainableParameters parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        if (Problem() is { } p)
        {
            throw new ArgumentException($"Optimizer setting \"{p.Field}\": {p.Message}.");
        }

        var decay = parameters.Decay.Select(x => x.Parameter).ToArray();
        var noDecay = parameters.NoDecay.Select(x => x.Parameter).ToArray();
        if (Type == "sgd")
        {
            return optim.SGD(
                [
                    new SGD.ParamGroup(decay, new SGD.Options { LearningRate = LearningRate, momentum = Momentum, nesterov = Nesterov, weight_decay = WeightDecay }),
                    new SGD.ParamGroup(noDecay, new SGD.Options { LearningRate = LearningRate, momentum = Momentum, nesterov = Nesterov, weight_decay = 0 }),
                ],
                LearningRate, Momentum, nesterov: Nesterov);
        }

        // TorchSharp's AdamW with a cheaper, bit-identical step (and the same state-dict bytes).
        return new Optimizers.AdamW(
            [
                new AdamW.ParamGroup { Parameters = decay, Options = new AdamW.Options { weight_decay = WeightDecay } },
                new AdamW.ParamGroup { Parameters = noDecay, Options = new AdamW.Options { weight_decay = 0 } },
            ],
            lr: LearningRate, beta1: Beta1, beta2: Beta2, eps: Epsilon);
    }
}
