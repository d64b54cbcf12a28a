namespace MedVlp.Training;

/// <summary>
/// A learning-rate schedule: the rate of every optimisation step as a pure function of the step, so a resumed run
/// needs no scheduler state beyond the step count. Rates are computed per parameter group from its base rate, as
/// PyTorch's <c>LambdaLR</c> (<c>lr = base * lambda(step)</c>) and <c>CosineAnnealingWarmRestarts</c> do.
/// </summary>
public abstract class LearningRateSchedule
{
    /// <summary>The learning rate of step <paramref name="stageStep"/> (0-based, counted from the start of the stage).</summary>
    /// <param name="baseRate">The group's base (peak) learning rate.</param>
    /// <param name="stageStep">The step within the stage, 0-based.</param>
    /// <param name="totalSteps">The steps of the stage (at least 1).</param>
    public abstract double LearningRate(double baseRate, long stageStep, long totalSteps);

    /// <summary>A fixed rate after an optional linear warm-up.</summary>
    public static LearningRateSchedule Constant(long warmupSteps = 0) => new ConstantSchedule(warmupSteps);

    /// <summary>Linear warm-up over a fraction of the steps, then a half cosine down to <paramref name="finalFraction"/> of the peak.</summary>
    public static LearningRateSchedule WarmupCosine(double warmupFraction = 0.1, double finalFraction = 0) => new WarmupCosineSchedule(warmupFraction, finalFraction);

    /// <summary>The rate times <paramref name="gamma"/> every <paramref name="stepSize"/> steps (PyTorch's <c>StepLR</c>).</summary>
    public static LearningRateSchedule Step(long stepSize, double gamma = 0.1) => new StepSchedule(stepSize, gamma);

    /// <summary>Cosine annealing with warm restarts (SGDR; PyTorch's <c>CosineAnnealingWarmRestarts</c>): the first cycle lasts
    /// <paramref name="firstCycle"/> steps and each later one <paramref name="cycleMultiplier"/> times longer.</summary>
    public static LearningRateSchedule CosineWarmRestarts(long firstCycle, int cycleMultiplier = 1, double minimumRate = 0) =>
        new CosineWarmRestartsSchedule(firstCycle, cycleMultiplier, minimumRate);

    private sealed class ConstantSchedule : LearningRateSchedule
    {
        private readonly long _warmup;

        public ConstantSchedule(long warmup)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(warmup);
            _warmup = warmup;
        }

        public override double LearningRate(double baseRate, long stageStep, long totalSteps) =>
            stageStep < _warmup ? baseRate * (stageStep + 1) / _warmup : baseRate;
    }

    private sealed class WarmupCosineSchedule : LearningRateSchedule
    {
        private readonly double _warmupFraction;
        private readonly double _finalFraction;

        public WarmupCosineSchedule(double warmupFraction, double finalFraction)
        {
            if (warmupFraction is < 0 or >= 1 || finalFraction is < 0 or > 1)
            {
                throw new ArgumentOutOfRangeException(nameof(warmupFraction), $"warm-up fraction must be in [0, 1) and the final fraction in [0, 1]; got {warmupFraction} and {finalFraction}.");
            }

            _warmupFraction = warmupFraction;
            _finalFraction = finalFraction;
        }

        public override double LearningRate(double baseRate, long stageStep, long totalSteps)
        {
            var warmup = (long)Math.Ceiling(_warmupFraction * totalSteps);
            if (stageStep < warmup)
            {
                return baseRate * (stageStep + 1) / warmup;
            }

            var progress = totalSteps - warmup <= 1 ? 1.0 : Math.Min(1.0, (double)(stageStep - warmup) / (totalSteps - warmup - 1));
            var floor = baseRate * _finalFraction;
            return floor + ((baseRate - floor) * 0.5 * (1 + Math.Cos(Math.PI * progress)));
        }
    }

    private sealed class StepSchedule : LearningRateSchedule
    {
        private readonly long _stepSize;
        private readonly double _gamma;

        public StepSchedule(long stepSize, double gamma)
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(stepSize, 1);
            if (!(gamma > 0))
            {
                throw new ArgumentOutOfRangeException(nameof(gamma), gamma, "gamma must be positive.");
            }

            _stepSize = stepSize;
            _gamma = gamma;
        }

        public override double LearningRate(double baseRate, long stageStep, long totalSteps) => baseRate * Math.Pow(_gamma, stageStep / _stepSize);
    }

    private sealed class CosineWarmRestartsSchedule : LearningRateSchedule
    {
        private readonly long _first;
        private readonly int _multiplier;
        private readonly double _minimum;

        public CosineWarmRestartsSchedule(long first, int multiplier, double minimum)
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(first, 1);
            ArgumentOutOfRangeException.ThrowIfLessThan(multiplier, 1);
            ArgumentOutOfRangeException.ThrowIfNegative(minimum);
            _first = first;
            _multiplier = multiplier;
            _minimum = minimum;
        }

        public override double LearningRate(double baseRate, long stageStep, long totalSteps)
        {
            // Integer bookkeeping of the cycle, as PyTorch's stageStep() without an explicit epoch does.
            var cycle = _first;
            var position = stageStep;
            while (position >= cycle)
            {
                position -= cycle;
                cycle *= _multiplier;
            }

            return _minimum + ((baseRate - _minimum) * (1 + Math.Cos(Math.PI * position / cycle)) / 2);
        }
    }
}
