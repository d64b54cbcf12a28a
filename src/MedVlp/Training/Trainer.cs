using System.Diagnostics;
using MedVlp.Losses;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Training;

/// <summary>
/// Trains any <see cref="TrainingObjective"/> (a model, its losses and how a batch becomes loss inputs): the trainable
/// parameters of the model and of the losses, AdamW or SGD with weight decay only where the modules allow it, a
/// learning-rate schedule per stage, gradient clipping, exact gradient accumulation, an optional EMA, evaluation with
/// early stopping, <c>metrics.jsonl</c>, plots, and checkpoints from which <see cref="TrainerOptions.Resume"/>
/// continues exactly (on the CPU a killed and resumed run ends with the same bytes as an uninterrupted one).
/// </summary>
/// <remarks>
/// Every step runs in a dispose scope, so memory stays flat. Frozen parameters (<c>requires_grad = false</c>) never reach
/// the optimizer, and modules whose parameters are all frozen stay in <c>eval()</c> mode while the rest trains.
/// Mixed precision (autocast) is not offered: TorchSharp 0.107 exposes no autocast — no <c>torch.autocast</c> or
/// <c>AutocastMode</c> in its managed API and no autocast entry among the exports of <c>libLibTorchSharp.so</c> — and
/// libtorch's own switches (<c>at::autocast::set_autocast_enabled(c10::DeviceType, bool)</c>,
/// <c>set_autocast_dtype</c>, <c>increment_nesting</c> / <c>decrement_nesting</c>, <c>clear_cache</c>) are exported by
/// <c>libtorch_cpu.so</c> only as C++ symbols, which MedVlp does not bind by mangled name. On the CPU training stays in
/// float32 either way.
/// <para>The AdamW of <see cref="OptimizerSettings"/> is <see cref="Optimizers.AdamW"/>: TorchSharp's, with a cheaper
/// step that gives the same bits.</para>
/// </remarks>
public sealed partial class Trainer : IDisposable
{
    private readonly TrainingObjective _objective;
    private readonly TrainerOptions _options;
    private readonly ILogger _logger;
    private TorchSharp.Modules.OptimizerHelper _optimizer;
    private readonly TorchSharp.Modules.Parameter[] _parameters;
    private readonly ExponentialMovingAverage? _ema;
    private readonly Distributed.DataParallel? _dataParallel;
    private bool _disposed;

    /// <summary>Creates a trainer.</summary>
    /// <param name="objective">What to optimise.</param>
    /// <param name="options">How.</param>
    /// <param name="logger">Receives every step's losses, learning rate and throughput (debug), and stages, evaluations and checkpoints (information).</param>
    public Trainer(TrainingObjective objective, TrainerOptions? options = null, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(objective);
        _objective = objective;
        _options = options ?? new TrainerOptions();
        _options.Validate();
        _logger = logger ?? NullLogger.Instance;
        Parameters = TrainableParameters.Collect(objective.Model, objective.Loss, _options.NoWeightDecay);
        _parameters = [.. Parameters.All];
        if (_parameters.Length == 0)
        {
            throw new ArgumentException("The objective has no trainable parameters: everything is frozen.", nameof(objective));
        }

        foreach (var stage in _options.Stages)
        {
            foreach (var part in stage.LossWeights.Keys)
            {
                if (!objective.LossParts.Contains(part))
                {
                    throw new ArgumentException($"Stage \"{stage.Name}\" sets the weight of loss part \"{part}\", but the objective's loss parts are [{string.Join(", ", objective.LossParts)}].");
                }
            }
        }

        _optimizer = _options.Optimizer.Create(Parameters);
        if (_options.ProcessGroup is { WorldSize: > 1 } group)
        {
            // Every replica starts from rank 0's weights (and buffers), whatever seed built it.
            _dataParallel = new Distributed.DataParallel(group, _parameters);
            _dataParallel.BroadcastParameters([.. objective.Model.buffers(), .. objective.Loss.buffers()]);
        }

        _ema = _options.EmaDecay is { } decay ? new ExponentialMovingAverage(_parameters, decay) : null;
    }

    /// <summary>Whether this process writes checkpoints, metrics and plots: always alone, rank 0 in a data-parallel job.</summary>
    public bool IsMainProcess => _options.ProcessGroup?.IsMain ?? true;

    /// <summary>The parameters being optimised.</summary>
    public TrainableParameters Parameters { get; }

    /// <summary>The optimizer (a new instance after a stage with <see cref="TrainingStage.ResetOptimizer"/> starts).</summary>
    public TorchSharp.Modules.OptimizerHelper Optimizer => _optimizer;

    /// <summary>The moving average of the weights, when <see cref="TrainerOptions.EmaDecay"/> is set.</summary>
    public ExponentialMovingAverage? Ema => _ema;

    /// <summary>The optimisation steps of a run over <paramref name="data"/>.</summary>
    public long TotalSteps(ITrainingData data)
    {
        ArgumentNullException.ThrowIfNull(data);
        return _options.Stages.Count > 0 ? _options.Stages.Sum(s => StageSteps(s, data)) : _options.Steps > 0 ? _options.Steps : EpochSteps(_options.Epochs, data);
    }

    /// <summary>
    /// Runs training to the end (or to early stopping). With <see cref="TrainerOptions.Resume"/> it first restores the
    /// newest complete checkpoint in the output folder and continues from its step and data position.
    /// </summary>
    /// <param name="data">The training micro-batches.</param>
    /// <param name="evaluate">Computes evaluation metrics (for example <see cref="ValidationLoss"/>); runs in eval mode without gradients.</param>
    /// <param name="progress">Receives every step's losses, learning rate and throughput.</param>
    /// <param name="cancellationToken">Stops between steps.</param>
    public TrainingSummary Fit(ITrainingData data, Func<CancellationToken, IReadOnlyDictionary<string, double>>? evaluate = null,
        IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(data);
        var total = TotalSteps(data);
        if (total < 1)
        {
            throw new ArgumentException($"The run has no step: {data.BatchesPerEpoch} batches per epoch with {_options.AccumulationSteps} accumulation steps.", nameof(data));
        }

        var store = _options.OutputDirectory is { } dir ? new CheckpointStore(Path.Combine(dir, "checkpoints"), _options.KeepLastCheckpoints) : null;
        var worldSize = _options.ProcessGroup?.WorldSize ?? 1;
        var info = new CheckpointInfo { Seed = _options.Seed, WorldSize = worldSize };
        var resumedFrom = 0L;
        if (_options.Resume && store?.LoadLatest() is { } latest)
        {
            if (latest.Info.WorldSize != worldSize)
            {
                throw new InvalidOperationException(
                    $"{latest.Path} was written by a run of {latest.Info.WorldSize} process(es); resume with the same world size, not {worldSize} " +
                    "(each rank's data position depends on it).");
            }

            Restore(latest.Content, latest.SectionsOffset);
            info = latest.Info;
            resumedFrom = info.Step;
            LogResumed(_logger, latest.Path, info.Step);
        }
        else
        {
            random.manual_seed(_options.Seed);
        }

        if (_options.ProcessGroup is { WorldSize: > 1 } group)
        {
            // Every rank must continue from rank 0's checkpoint (a folder all ranks share).
            Span<long> rootStep = [resumedFrom];
            group.Broadcast(rootStep);
            if (rootStep[0] != resumedFrom)
            {
                throw new InvalidOperationException(
                    $"Rank {group.Rank} resumes at step {resumedFrom} but rank 0 at step {rootStep[0]}: the output folder must be shared by all ranks.");
            }
        }

        using var metrics = _options.OutputDirectory is { } outDir && IsMainProcess ? new MetricsLog(Path.Combine(outDir, "metrics.jsonl"), resumedFrom) : null;
        var history = new List<TrainingProgress>();
        IReadOnlyDictionary<string, double>? lastEval = null;
        var stoppedEarly = false;
        var step = info.Step;
        var microIndex = ((long)(info.Epoch - 1) * data.BatchesPerEpoch) + info.BatchInEpoch;
        using var batches = data.ReadEpochs(info.Epoch, info.BatchInEpoch, cancellationToken).GetEnumerator();
        string? currentStage = null;
        SetTrainingMode(true);
        try
        {
            while (step < total && !stoppedEarly)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var (stage, stageStart, stageSteps) = StageAt(step, data, total);
                if (stage.Name != currentStage)
                {
                    currentStage = stage.Name;
                    foreach (var (part, weight) in stage.LossWeights)
                    {
                        _objective.SetLossWeight(part, weight);
                    }

                    if (stage.ResetOptimizer && step == stageStart && step > 0)
                    {
                        // A fresh optimizer as the stage's first step (never when resuming inside the stage: the checkpoint
                        // holds the state that already began at the reset).
                        var fresh = _options.Optimizer.Create(Parameters);
                        _optimizer.Dispose();
                        _optimizer = fresh;
                    }

                    LogStage(_logger, stage.Name, step, stageSteps);
                }

                var lr = _options.Schedule.LearningRate(stage.LearningRate ?? _options.Optimizer.LearningRate, step - stageStart, stageSteps);
                var micro = new List<TrainingBatch>(_options.AccumulationSteps);
                var epoch = (int)(microIndex / data.BatchesPerEpoch) + 1;
                IReadOnlyDictionary<string, double> losses;
                var clock = Stopwatch.StartNew();
                try
                {
                    for (var m = 0; m < _options.AccumulationSteps; m++)
                    {
                        if (!batches.MoveNext())
                        {
                            throw new InvalidOperationException("The training data ended early.");
                        }

                        micro.Add(batches.Current);
                    }

                    losses = TrainStep(micro, lr);
                }
                finally
                {
                    foreach (var b in micro)
                    {
                        b.Dispose();
                    }
                }

                microIndex += _options.AccumulationSteps;
                step++;
                var examples = micro.Sum(b => b.Count);
                var record = new TrainingProgress(step, total, epoch, stage.Name, losses, lr, examples / Math.Max(1e-9, clock.Elapsed.TotalSeconds), null);
                metrics?.WriteStep(record);
                if (_logger.IsEnabled(LogLevel.Debug))
                {
#pragma warning disable CA1873 // guarded by IsEnabled
                    LogStep(_logger, step, total, losses["total"], lr, record.ExamplesPerSecond, Describe(losses));
#pragma warning restore CA1873
                }

                var last = step == total;
                double? metricValue = null;
                if (evaluate is not null && ((_options.EvaluateEvery > 0 && step % _options.EvaluateEvery == 0) || last))
                {
                    lastEval = Evaluate(evaluate, cancellationToken);
                    metrics?.WriteEvaluation(step, lastEval);
                    record = record with { Evaluation = lastEval };
                    if (lastEval.TryGetValue(_options.BestMetric, out var value))
                    {
                        metricValue = value;
                        var better = info.BestMetric is not { } best || (_options.HigherIsBetter ? value > best : value < best);
                        info = better
                            ? info with { BestMetric = value, BestStep = step, EvaluationsWithoutImprovement = 0 }
                            : info with { EvaluationsWithoutImprovement = info.EvaluationsWithoutImprovement + 1 };
                        stoppedEarly = _options.EarlyStoppingPatience > 0 && info.EvaluationsWithoutImprovement >= _options.EarlyStoppingPatience;
                    }

                    if (_logger.IsEnabled(LogLevel.Information))
                    {
#pragma warning disable CA1873 // guarded by IsEnabled
                        LogEvaluation(_logger, step, Describe(lastEval));
#pragma warning restore CA1873
                    }
                }

                info = info with
                {
                    Step = step,
                    Epoch = (int)(microIndex / data.BatchesPerEpoch) + 1,
                    BatchInEpoch = (int)(microIndex % data.BatchesPerEpoch),
                    Metric = metricValue,
                };
                if (store is not null && IsMainProcess && ((_options.CheckpointEvery > 0 && step % _options.CheckpointEvery == 0) || last || stoppedEarly))
                {
                    var path = store.Save(info, WriteSections, isBest: metricValue is not null && info.BestStep == step);
                    LogCheckpoint(_logger, path);
                }

                if (_options.OutputDirectory is { } plotsDir && metrics is not null && (step % _options.PlotEvery == 0 || last || stoppedEarly))
                {
                    TrainingPlots.Write(metrics.Path, Path.Combine(plotsDir, "plots"));
                }

                history.Add(record);
                progress?.Report(record);
            }
        }
        finally
        {
            SetTrainingMode(false);
        }

        if (stoppedEarly)
        {
            LogEarlyStop(_logger, step, info.BestStep);
        }

        return new TrainingSummary(step, resumedFrom, stoppedEarly, history.Count > 0 ? history[^1].Losses : new Dictionary<string, double>(), info.BestMetric, lastEval, history);
    }

    /// <summary>
    /// One optimisation step over <paramref name="microBatches"/> at <paramref name="learningRate"/>; returns the total and
    /// every loss term. With several micro-batches the update equals that of one batch made of all of them: the model
    /// encodes each without gradients, the loss runs once on all features (negatives span the whole batch, as open_clip's
    /// <c>accum_freq</c>), and each micro-batch is then encoded again and back-propagated with its slice of the feature
    /// gradient. Loss parameters receive their gradient once. Leaves no tensor alive.
    /// </summary>
    public IReadOnlyDictionary<string, double> TrainStep(IReadOnlyList<TrainingBatch> microBatches, double learningRate)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(microBatches);
        if (microBatches.Count == 0)
        {
            throw new ArgumentException("A step needs at least one micro-batch.", nameof(microBatches));
        }

        foreach (var group in _optimizer.ParamGroups)
        {
            group.LearningRate = learningRate;
        }

        using var scope = NewDisposeScope();
        _optimizer.zero_grad();
        LossOutput output;
        if (microBatches.Count == 1)
        {
            var features = _objective.Encode(microBatches[0]);
            output = _objective.ComputeLoss(features);
            output.Total.backward();
        }
        else
        {
            var cached = new List<FeatureSet>(microBatches.Count);
            using (no_grad())
            {
                foreach (var batch in microBatches)
                {
                    cached.Add(_objective.Encode(batch));
                }
            }

            using var joined = FeatureSet.Concat(cached);
            var leaves = new FeatureSet(joined.Items.Select(kv => new KeyValuePair<string, Tensor>(kv.Key,
                kv.Value.is_floating_point() ? kv.Value.detach().requires_grad_(true) : kv.Value.detach())));
            output = _objective.ComputeLoss(leaves);
            output.Total.backward();
            long offset = 0;
            foreach (var batch in microBatches)
            {
                using var inner = NewDisposeScope();
                var features = _objective.Encode(batch);
                Tensor? surrogate = null;
                foreach (var name in features.Names)
                {
                    var feature = features[name];
                    var grad = leaves[name].grad;
                    if (!feature.requires_grad || grad is null)
                    {
                        continue;
                    }

                    var term = (feature * grad.narrow(0, offset, features.Count)).sum();
                    surrogate = surrogate is null ? term : surrogate + term;
                }

                surrogate?.backward();
                offset += features.Count;
            }
        }

        // Data parallel: average the gradients over the ranks before clipping and the step, so every replica takes the same step.
        _dataParallel?.AllReduceGradients();

        var scalars = output.ToScalars();
        if (!double.IsFinite(scalars["total"]))
        {
            throw new InvalidOperationException($"The loss is {scalars["total"]} ({string.Join(", ", scalars.Select(kv => $"{kv.Key}={kv.Value}"))}); lower the learning rate or check the data.");
        }

        if (_options.GradientClipNorm > 0)
        {
            nn.utils.clip_grad_norm_(_parameters, _options.GradientClipNorm);
        }

        _optimizer.step();
        _ema?.Update();
        return scalars;
    }

    /// <summary>The mean loss and loss terms over <paramref name="data"/> (epoch 1, in order), without gradients, named <c>val/...</c>.</summary>
    public IReadOnlyDictionary<string, double> ValidationLoss(ITrainingData data, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(data);
        var sums = new Dictionary<string, double>(StringComparer.Ordinal);
        var count = 0;
        var wasTraining = _objective.Model.training;
        SetTrainingMode(false);
        try
        {
            using var noGrad = no_grad();
            foreach (var batch in data.ReadEpoch(1, 0, cancellationToken))
            {
                using (batch)
                using (var scope = NewDisposeScope())
                {
                    using var output = _objective.ComputeLoss(_objective.Encode(batch));
                    foreach (var (k, v) in output.ToScalars())
                    {
                        sums[k] = sums.GetValueOrDefault(k) + v;
                    }
                }

                count++;
            }
        }
        finally
        {
            SetTrainingMode(wasTraining);
        }

        return count == 0 ? sums : sums.ToDictionary(kv => kv.Key == "total" ? "val/loss" : "val/" + kv.Key, kv => kv.Value / count);
    }

    /// <summary>Releases the optimizer state and the EMA.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _optimizer.Dispose();
        _ema?.Dispose();
        _dataParallel?.Dispose();
    }

    /// <summary>Train mode for the model and losses, except modules whose parameters are all frozen (they stay in eval mode).</summary>
    private void SetTrainingMode(bool training)
    {
        foreach (var module in new[] { _objective.Model, _objective.Loss })
        {
            module.train(training);
            if (!training)
            {
                continue;
            }

            foreach (var (_, child) in module.named_modules())
            {
                var ps = child.parameters().ToArray();
                if (ps.Length > 0 && ps.All(p => !p.requires_grad))
                {
                    child.eval();
                }
            }
        }
    }

    private IReadOnlyDictionary<string, double> Evaluate(Func<CancellationToken, IReadOnlyDictionary<string, double>> evaluate, CancellationToken cancellationToken)
    {
        SetTrainingMode(false);
        try
        {
            using var noGrad = no_grad();
            using var scope = NewDisposeScope();
            return evaluate(cancellationToken);
        }
        finally
        {
            SetTrainingMode(true);
        }
    }

    private void WriteSections(BinaryWriter writer)
    {
        _objective.Model.save(writer);
        _objective.Loss.save(writer);
        _optimizer.save_state_dict(writer);
        var rng = TorchRandomState.Get();
        writer.Write(rng.Length);
        writer.Write(rng);
        writer.Write(_ema is not null);
        _ema?.Save(writer);
    }

    private void Restore(byte[] content, int offset)
    {
        using var stream = new MemoryStream(content, offset, content.Length - offset, writable: false);
        using var reader = new BinaryReader(stream);
        _objective.Model.load(reader);
        _objective.Loss.load(reader);
        _optimizer.load_state_dict(reader);
        var length = reader.ReadInt32();
        if (length is <= 0 or > 1 << 20)
        {
            throw new InvalidDataException($"The checkpoint's random-generator state has an impossible length {length}.");
        }

        TorchRandomState.Set(reader.ReadBytes(length));
        var hasEma = reader.ReadBoolean();
        if (hasEma != (_ema is not null))
        {
            throw new InvalidDataException($"The checkpoint {(hasEma ? "has" : "has no")} EMA weights, but this run {(_ema is null ? "uses none" : "uses them")}.");
        }

        _ema?.Load(reader);
    }

    private static string Describe(IReadOnlyDictionary<string, double> values) =>
        string.Join(", ", values.Select(kv => string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{kv.Key}={kv.Value:G5}")));

    private long EpochSteps(int epochs, ITrainingData data) => (long)epochs * data.BatchesPerEpoch / _options.AccumulationSteps;

    private long StageSteps(TrainingStage s, ITrainingData data) => s.Steps > 0 ? s.Steps : EpochSteps(s.Epochs, data);

    private (TrainingStage Stage, long Start, long Steps) StageAt(long step, ITrainingData data, long total)
    {
        if (_options.Stages.Count == 0)
        {
            return (new TrainingStage { Name = "train" }, 0, total);
        }

        long start = 0;
        foreach (var s in _options.Stages)
        {
            var n = StageSteps(s, data);
            if (step < start + n)
            {
                return (s, start, n);
            }

            start += n;
        }

        var lastStage = _options.Stages[^1];
        return (lastStage, start - StageSteps(lastStage, data), StageSteps(lastStage, data));
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "step {Step}/{Total}: loss {Loss:G5}, lr {LearningRate:G4}, {Throughput:F1} examples/s ({Terms})")]
    private static partial void LogStep(ILogger logger, long step, long total, double loss, double learningRate, double throughput, string terms);

    [LoggerMessage(Level = LogLevel.Information, Message = "stage {Stage} starts at step {Step} ({Steps} steps)")]
    private static partial void LogStage(ILogger logger, string stage, long step, long steps);

    [LoggerMessage(Level = LogLevel.Information, Message = "evaluation after step {Step}: {Metrics}")]
    private static partial void LogEvaluation(ILogger logger, long step, string metrics);

    [LoggerMessage(Level = LogLevel.Information, Message = "checkpoint {Path}")]
    private static partial void LogCheckpoint(ILogger logger, string path);

    [LoggerMessage(Level = LogLevel.Information, Message = "resumed from {Path} at step {Step}")]
    private static partial void LogResumed(ILogger logger, string path, long step);

    [LoggerMessage(Level = LogLevel.Information, Message = "early stop after step {Step}; best at step {BestStep}")]
    private static partial void LogEarlyStop(ILogger logger, long step, long bestStep);
}

/// <summary>libtorch's CPU generator state (dropout, noise) for checkpoints.</summary>
internal static class TorchRandomState
{
    public static byte[] Get()
    {
        using var state = torch.Generator.Default.get_state();
        return state.data<byte>().ToArray();
    }

    public static void Set(byte[] state)
    {
        using var t = tensor(state, ScalarType.Byte);
        torch.Generator.Default.set_state(t);
    }
}
