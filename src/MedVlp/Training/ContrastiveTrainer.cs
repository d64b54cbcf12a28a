using System.Text.RegularExpressions;
using MedVlp.Losses;
using MedVlp.Volumes;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MedVlp.Training;

/// <summary>
/// Trains a <see cref="VisionLanguageModel"/> on volume-report pairs with the symmetric CLIP loss
/// (<see cref="ClipLoss"/>): AdamW (no weight decay on biases, norms and token embeddings), linear warm-up then cosine
/// decay, global gradient-norm clipping. Seeded: on the CPU the same seed gives the same weights. Device-agnostic: it
/// runs where the model lives. Every step runs in a dispose scope, so memory stays flat across steps.
/// </summary>
public sealed partial class ContrastiveTrainer : IDisposable
{
    private readonly VisionLanguageModel _model;
    private readonly ContrastiveTrainerOptions _options;
    private readonly ClipLoss _loss;
    private readonly AdamW _optimizer;
    private readonly Parameter[] _parameters;
    private bool _disposed;

    /// <summary>Creates a trainer for <paramref name="model"/>.</summary>
    public ContrastiveTrainer(VisionLanguageModel model, ContrastiveTrainerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        _model = model;
        _options = options ?? new ContrastiveTrainerOptions();
        _options.Validate();
        _loss = new ClipLoss(_options.Loss);
        var named = model.Module.named_parameters().Where(p => p.parameter.requires_grad).ToArray();
        _parameters = named.Select(p => p.parameter).ToArray();
        var decay = named.Where(p => UsesWeightDecay(p.name, p.parameter)).Select(p => p.parameter).ToArray();
        var noDecay = named.Where(p => !UsesWeightDecay(p.name, p.parameter)).Select(p => p.parameter).ToArray();
        _optimizer = optim.AdamW(
            [
                new AdamW.ParamGroup { Parameters = decay, Options = new AdamW.Options { weight_decay = _options.WeightDecay } },
                new AdamW.ParamGroup { Parameters = noDecay, Options = new AdamW.Options { weight_decay = 0 } },
            ],
            lr: _options.LearningRate, beta1: _options.Betas.Beta1, beta2: _options.Betas.Beta2, eps: 1e-6);
    }

    /// <summary>Whether a parameter is decayed: weight matrices yes; biases, norm scales, the logit scale and the
    /// position/class/latent token embeddings no (timm's and open_clip's convention; MedBLIP: none on bias and LayerNorm).</summary>
    public static bool UsesWeightDecay(string name, Tensor parameter)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(parameter);
        return parameter.dim() >= 2 && !name.EndsWith("pos_embed", StringComparison.Ordinal) && !name.EndsWith("cls_token", StringComparison.Ordinal)
            && !name.EndsWith("latent", StringComparison.Ordinal) && !name.Contains("LayerNorm", StringComparison.Ordinal);
    }

    /// <summary>The learning rate of step <paramref name="step"/> (0-based) of <paramref name="totalSteps"/>: linear warm-up, then cosine decay.</summary>
    public double LearningRateAt(int step, int totalSteps)
    {
        var warmup = (int)Math.Ceiling(_options.WarmupFraction * totalSteps);
        if (step < warmup)
        {
            return _options.LearningRate * (step + 1) / warmup;
        }

        var progress = totalSteps - warmup <= 1 ? 1.0 : (double)(step - warmup) / (totalSteps - warmup - 1);
        var floor = _options.LearningRate * _options.FinalLearningRateFraction;
        return floor + ((_options.LearningRate - floor) * 0.5 * (1 + Math.Cos(Math.PI * progress)));
    }

    /// <summary>Trains on <paramref name="pairs"/> for the configured number of epochs.</summary>
    /// <param name="pairs">Volume-report pairs (at least one batch).</param>
    /// <param name="progress">Receives a report after every step.</param>
    /// <param name="cancellationToken">Stops training between steps; the model keeps the weights reached so far.</param>
    public TrainingHistory Train(IReadOnlyList<VolumeTextPair> pairs, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(pairs);
        _model.ThrowIfDisposed();
        var batchSize = _options.BatchSize;
        if (pairs.Count < batchSize)
        {
            throw new ArgumentException($"Training needs at least one full batch of {batchSize} pairs; got {pairs.Count}.", nameof(pairs));
        }

        var stepsPerEpoch = pairs.Count / batchSize;
        var totalSteps = stepsPerEpoch * _options.Epochs;
        var random = new Random(_options.Seed);
        torch.random.manual_seed(_options.Seed);
        var losses = new List<double>(totalSteps);
        var rates = new List<double>(totalSteps);

        // The model's preprocessing is deterministic, so without augmentation every volume is prepared once.
        using var cache = _options.VolumeAugmentation is null ? PrepareAll(pairs, cancellationToken) : null;
        var order = Enumerable.Range(0, pairs.Count).ToArray();
        _model.Module.train();
        try
        {
            var step = 0;
            for (var epoch = 1; epoch <= _options.Epochs; epoch++)
            {
                random.Shuffle(order);
                for (var b = 0; b < stepsPerEpoch; b++, step++)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    var indices = order.AsSpan(b * batchSize, batchSize).ToArray();
                    var texts = indices.Select(i => AugmentText(pairs[i].Text, random)).ToArray();
                    var lr = LearningRateAt(step, totalSteps);
                    double loss;
                    using (var scope = NewDisposeScope())
                    {
                        Tensor volumes;
                        if (cache is null)
                        {
                            var augmented = indices.Select(i => _options.VolumeAugmentation!(pairs[i].Volume, random)).ToArray();
                            volumes = _model.PrepareVolumes(augmented, cancellationToken);
                        }
                        else
                        {
                            using var index = tensor(indices.Select(i => (long)i).ToArray());
                            volumes = cache.index_select(0, index).to(_model.Device);
                        }

                        var (ids, mask) = _model.PrepareTexts(texts);
                        loss = Step(volumes, ids, mask, lr);
                    }

                    losses.Add(loss);
                    rates.Add(lr);
                    progress?.Report(new TrainingProgress(step + 1, totalSteps, epoch, loss, lr, _model.LogitScale));
                }
            }
        }
        finally
        {
            _model.Module.eval();
        }

        return new TrainingHistory(losses, rates, stepsPerEpoch, batchSize);
    }

    /// <summary>One optimisation step on a prepared batch; returns the loss. Leaves no tensor alive.</summary>
    /// <param name="volumes">Preprocessed volumes (B x 1 x S x S x S) on the model's device.</param>
    /// <param name="inputIds">Token ids (B x T).</param>
    /// <param name="attentionMask">Attention mask (B x T).</param>
    /// <param name="learningRate">The learning rate of this step.</param>
    public double Step(Tensor volumes, Tensor inputIds, Tensor attentionMask, double learningRate)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(volumes);
        ArgumentNullException.ThrowIfNull(inputIds);
        ArgumentNullException.ThrowIfNull(attentionMask);
        foreach (var group in _optimizer.ParamGroups)
        {
            group.LearningRate = learningRate;
        }

        using var scope = NewDisposeScope();
        _optimizer.zero_grad();
        var imageFeatures = _model.DualEncoder.EncodeImages(volumes);
        var textFeatures = _model.DualEncoder.EncodeTexts(inputIds, attentionMask);
        var output = _loss.forward(new ContrastiveInput(imageFeatures, textFeatures, _model.DualEncoder.LogitScale()));
        output.Total.backward();
        nn.utils.clip_grad_norm_(_parameters, _options.GradientClipNorm);
        _optimizer.step();
        return output.Total.ToDouble();
    }

    /// <summary>Releases the optimizer state.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _optimizer.Dispose();
        _loss.Dispose();
    }

    private Tensor PrepareAll(IReadOnlyList<VolumeTextPair> pairs, CancellationToken cancellationToken)
    {
        const int Chunk = 64;
        var parts = new List<Tensor>();
        try
        {
            for (var start = 0; start < pairs.Count; start += Chunk)
            {
                var volumes = pairs.Skip(start).Take(Chunk).Select(p => p.Volume).ToArray();
                var prepared = _model.PrepareVolumes(volumes, cancellationToken);
                if (prepared.device.type != DeviceType.CPU)
                {
                    var cpu = prepared.cpu();
                    prepared.Dispose();
                    prepared = cpu;
                }

                parts.Add(prepared);
            }

            return cat(parts, 0);
        }
        finally
        {
            foreach (var p in parts)
            {
                p.Dispose();
            }
        }
    }

    private string AugmentText(string text, Random random)
    {
        if (_options.SentenceSubsetProbability <= 0 || random.NextDouble() >= _options.SentenceSubsetProbability)
        {
            return text;
        }

        var sentences = SentenceBoundary().Split(text.Trim());
        if (sentences.Length <= 1)
        {
            return text;
        }

        var keep = sentences.Where(_ => random.NextDouble() < 0.5).ToList();
        if (keep.Count == 0)
        {
            keep.Add(sentences[random.Next(sentences.Length)]);
        }

        return string.Join(' ', keep);
    }

    [GeneratedRegex(@"(?<=[.!?])\s+")]
    private static partial Regex SentenceBoundary();
}
