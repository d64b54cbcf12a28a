using MedVlp.Modeling.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MedVlp.Architectures.MedBlip;

/// <summary>Options of <see cref="MedBlipTrainer"/> (MedBLIP's recipe: AdamW, weight decay 1e-4, none on biases and norms,
/// cosine schedule after a 10 % linear warm-up, gradient clipping at 1.0).</summary>
public sealed record MedBlipTrainerOptions
{
    /// <summary>Peak learning rate.</summary>
    public double LearningRate { get; init; } = 1e-4;

    /// <summary>AdamW weight decay of the weight matrices.</summary>
    public double WeightDecay { get; init; } = 1e-4;

    /// <summary>Fraction of the steps spent warming up linearly.</summary>
    public double WarmupFraction { get; init; } = 0.1;

    /// <summary>Largest gradient norm.</summary>
    public double GradientClipNorm { get; init; } = 1.0;
}

/// <summary>
/// A plain AdamW loop over a <see cref="MedBlipModel"/>'s trainable parameters (the 3D embedding, <c>ln_vision</c>, the
/// Q-Former, the projections and the temperature; the EVA blocks and the language model stay frozen). One step = one
/// <see cref="MedBlipModel.ComputeLoss"/>, backward, clipping, update, all inside a dispose scope.
/// </summary>
public sealed class MedBlipTrainer : IDisposable
{
    private readonly MedBlipModel _model;
    private readonly MedBlipTrainerOptions _options;
    private readonly Parameter[] _parameters;
    private readonly AdamW _optimizer;

    /// <summary>Creates the optimizer over the trainable parameters (no decay where <see cref="NoWeightDecay"/> says so).</summary>
    public MedBlipTrainer(MedBlipModel model, MedBlipTrainerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        _model = model;
        _options = options ?? new MedBlipTrainerOptions();
        if (!(_options.LearningRate > 0) || _options.WeightDecay < 0 || _options.WarmupFraction is < 0 or >= 1 || !(_options.GradientClipNorm > 0))
        {
            throw new ArgumentException($"Invalid trainer options {_options}.", nameof(options));
        }

        var noDecay = NoWeightDecay.ParameterNames(model);
        var named = model.TrainableParameters().ToArray();
        _parameters = [.. named.Select(p => p.Parameter)];
        _optimizer = optim.AdamW(
            [
                new AdamW.ParamGroup { Parameters = [.. named.Where(p => !noDecay.Contains(p.Name)).Select(p => p.Parameter)], Options = new AdamW.Options { weight_decay = _options.WeightDecay } },
                new AdamW.ParamGroup { Parameters = [.. named.Where(p => noDecay.Contains(p.Name)).Select(p => p.Parameter)], Options = new AdamW.Options { weight_decay = 0 } },
            ],
            lr: _options.LearningRate);
    }

    /// <summary>The learning rate at a step: linear warm-up, then cosine decay to zero.</summary>
    public double LearningRateAt(int step, int totalSteps)
    {
        var warmup = Math.Max(1, (int)Math.Ceiling(_options.WarmupFraction * totalSteps));
        if (step < warmup)
        {
            return _options.LearningRate * (step + 1) / warmup;
        }

        var progress = totalSteps - warmup <= 1 ? 1.0 : (double)(step - warmup) / (totalSteps - warmup - 1);
        return _options.LearningRate * 0.5 * (1 + Math.Cos(Math.PI * Math.Min(1, progress)));
    }

    /// <summary>One optimisation step; returns the loss terms (<c>itc_report</c>, <c>itc_qa</c>, <c>lm</c>) and the total (<c>loss</c>).</summary>
    public IReadOnlyDictionary<string, double> Step(MedBlipBatch batch, double learningRate)
    {
        ArgumentNullException.ThrowIfNull(batch);
        foreach (var group in _optimizer.ParamGroups)
        {
            group.LearningRate = learningRate;
        }

        _model.train();
        using var scope = NewDisposeScope();
        _optimizer.zero_grad();
        using var loss = _model.ComputeLoss(batch);
        loss.Total.backward();
        nn.utils.clip_grad_norm_(_parameters, _options.GradientClipNorm);
        _optimizer.step();
        var result = loss.Terms.ToDictionary(t => t.Key, t => t.Value.ToDouble());
        result["loss"] = loss.Total.ToDouble();
        return result;
    }

    /// <summary>Releases the optimizer state.</summary>
    public void Dispose() => _optimizer.Dispose();
}
