using System.Numerics.Tensors;
using MedVlp.Modeling;
using MedVlp.Text;
using MedVlp.Volumes;
using static TorchSharp.torch;

namespace MedVlp.Inference;

/// <summary>A class for zero-shot classification: its name and one or more text prompts describing it.</summary>
/// <param name="Name">The label name reported in predictions.</param>
/// <param name="Prompts">Prompts whose embeddings are averaged into the class embedding (open_clip's prompt ensembling).</param>
public sealed record ZeroShotLabel(string Name, IReadOnlyList<string> Prompts)
{
    /// <summary>A label with a single prompt.</summary>
    public ZeroShotLabel(string name, string prompt)
        : this(name, [prompt])
    {
    }
}

/// <summary>The zero-shot prediction for one volume.</summary>
/// <param name="Label">The most probable label.</param>
/// <param name="LabelIndex">Its index in <see cref="ZeroShotClassifier.Labels"/>.</param>
/// <param name="Probabilities">Softmax over the labels of logit_scale x cosine similarity, in label order.</param>
/// <param name="Similarities">Cosine similarity of the volume to each label's averaged prompt embedding.</param>
public sealed record ZeroShotPrediction(string Label, int LabelIndex, IReadOnlyList<float> Probabilities, IReadOnlyList<float> Similarities)
{
    /// <summary>Why the prediction may be meaningless (NaN or infinite voxels in the volume, a non-finite embedding); empty when there is no doubt.</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];
}

/// <summary>
/// Classifies volumes by comparing their embedding with text embeddings of label prompts (CLIP-style contrastive
/// zero-shot). Each label's prompts are embedded, averaged and re-normalised once, when the classifier is made.
/// A model with its own zero-shot rule (<see cref="IZeroShotScoringModel"/>, such as PRIOR's global + 0.5 x local score)
/// classifies volumes by that rule instead: its prompts are encoded once, and the probabilities are its scores divided by
/// their sum. Safe for concurrent callers.
/// </summary>
public sealed class ZeroShotClassifier
{
    private readonly VisionLanguageModel _model;
    private readonly float[][] _classEmbeddings;
    private readonly float _scale;
    private readonly float[][][]? _scorerPrompts;

    internal ZeroShotClassifier(VisionLanguageModel model, IEnumerable<ZeroShotLabel> labels)
    {
        ArgumentNullException.ThrowIfNull(labels);
        _model = model;
        Labels = labels.ToArray();
        if (Labels.Count < 2)
        {
            throw new ArgumentException("Zero-shot classification needs at least two labels.", nameof(labels));
        }

        foreach (var label in Labels)
        {
            if (string.IsNullOrWhiteSpace(label.Name) || label.Prompts is null || label.Prompts.Count == 0 || label.Prompts.Any(string.IsNullOrWhiteSpace))
            {
                throw new ArgumentException($"Label '{label.Name}' needs a name and at least one non-empty prompt.", nameof(labels));
            }
        }

        if (Labels.Select(l => l.Name).Distinct(StringComparer.Ordinal).Count() != Labels.Count)
        {
            throw new ArgumentException("Label names must be distinct.", nameof(labels));
        }

        _classEmbeddings = new float[Labels.Count][];
        for (var c = 0; c < Labels.Count; c++)
        {
            var prompts = model.TextEncoder.Embed(Labels[c].Prompts);
            var mean = new float[model.DualEncoder.EmbeddingDim];
            foreach (var p in prompts)
            {
                TensorPrimitives.Add(mean, p, mean);
            }

            TensorPrimitives.Divide(mean, TensorPrimitives.Norm(mean), mean);
            _classEmbeddings[c] = mean;
        }

        _scale = (float)model.LogitScale;
        if (model.Module is IZeroShotScoringModel scorer)
        {
            _scorerPrompts = [.. Labels.Select(l => EncodePrompts(model, scorer, l.Prompts))];
        }
    }

    /// <summary>The labels, in the order of the probabilities.</summary>
    public IReadOnlyList<ZeroShotLabel> Labels { get; }

    /// <summary>Classifies one volume.</summary>
    public ZeroShotPrediction Classify(Volume volume) => Classify([volume])[0];

    /// <summary>Classifies several volumes (embedded in batches).</summary>
    public IReadOnlyList<ZeroShotPrediction> Classify(IReadOnlyList<Volume> volumes, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(volumes);
        if (_scorerPrompts is null || _model.Module is not IZeroShotScoringModel scorer)
        {
            return _model.VolumeEncoder.Embed(volumes, cancellationToken).Select((e, n) => WithVolumeWarnings(ClassifyEmbedding(e), volumes[n])).ToArray();
        }

        _model.ThrowIfDisposed();
        var predictions = new ZeroShotPrediction[volumes.Count];
        var batch = _model.VolumeEncoder.BatchSize;
        for (var start = 0; start < volumes.Count; start += batch)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var chunk = volumes.Skip(start).Take(batch).ToArray();
            using var noGrad = no_grad();
            using var scope = NewDisposeScope();
            var images = _model.PrepareVolumes(chunk, cancellationToken);
            var prompts = _scorerPrompts.Select(rows => tensor(rows.SelectMany(r => r).ToArray(), [rows.Length, rows[0].Length], device: _model.Device)).ToList();
            var scores = scorer.ZeroShotScores(images, prompts).cpu().to(ScalarType.Float32).contiguous().data<float>().ToArray();
            var embeddings = scorer.EncodeImages(images).cpu().to(ScalarType.Float32).contiguous().data<float>().ToArray();
            var k = Labels.Count;
            var e = _model.DualEncoder.EmbeddingDim;
            for (var n = 0; n < chunk.Length; n++)
            {
                var row = scores.AsSpan(n * k, k);
                var probabilities = new float[k];
                TensorPrimitives.Divide(row, TensorPrimitives.Sum(row), probabilities);
                var similarities = new float[k];
                for (var c = 0; c < k; c++)
                {
                    similarities[c] = TensorPrimitives.CosineSimilarity(embeddings.AsSpan(n * e, e), _classEmbeddings[c]);
                }

                var best = TensorPrimitives.IndexOfMax(probabilities);
                var finite = float.IsFinite(TensorPrimitives.Sum(probabilities));
                predictions[start + n] = WithVolumeWarnings(
                    new ZeroShotPrediction(Labels[best].Name, best, probabilities, similarities)
                    {
                        Warnings = finite ? [] : ["the zero-shot scores are not finite; the prediction is meaningless"],
                    },
                    chunk[n]);
            }
        }

        return predictions;
    }

    private static ZeroShotPrediction WithVolumeWarnings(ZeroShotPrediction prediction, Volume volume) =>
        volume.CountNonFinite().Describe() is { } bad ? prediction with { Warnings = [$"the volume's voxels are not all finite: {bad}", .. prediction.Warnings] } : prediction;

    /// <summary>Classifies a volume embedding made by this model's <see cref="VolumeEncoder"/> by its cosine similarity to
    /// the labels' text embeddings (for a model with its own rule, <see cref="IZeroShotScoringModel"/>, only the global
    /// part of it: <see cref="Classify(Volume)"/> applies the whole rule).</summary>
    public ZeroShotPrediction ClassifyEmbedding(ReadOnlySpan<float> volumeEmbedding)
    {
        if (volumeEmbedding.Length != _model.DualEncoder.EmbeddingDim)
        {
            throw new ArgumentException($"Expected an embedding of width {_model.DualEncoder.EmbeddingDim}, got {volumeEmbedding.Length}.", nameof(volumeEmbedding));
        }

        var similarities = new float[Labels.Count];
        for (var c = 0; c < Labels.Count; c++)
        {
            similarities[c] = TensorPrimitives.CosineSimilarity(volumeEmbedding, _classEmbeddings[c]);
        }

        var logits = new float[Labels.Count];
        TensorPrimitives.Multiply(similarities, _scale, logits);
        var probabilities = new float[Labels.Count];
        TensorPrimitives.SoftMax(logits, probabilities);
        var best = TensorPrimitives.IndexOfMax(probabilities);
        var finite = float.IsFinite(TensorPrimitives.Sum(similarities)) && float.IsFinite(TensorPrimitives.Sum(probabilities));
        return new ZeroShotPrediction(Labels[best].Name, best, probabilities, similarities)
        {
            Warnings = finite ? [] : ["the similarities are not finite (the volume embedding is NaN or zero); the prediction is meaningless"],
        };
    }

    /// <summary>A label's prompts encoded by the model's own zero-shot rule: tokenized padded one token past the longest (so
    /// each keeps its end token, as a fixed-length padding does), one row per prompt.</summary>
    private static float[][] EncodePrompts(VisionLanguageModel model, IZeroShotScoringModel scorer, IReadOnlyList<string> prompts)
    {
        var max = model.DualEncoder.MaxTextTokens;
        var longest = model.Tokenizer.EncodeBatch(prompts, max).SequenceLength;
        var batch = model.Tokenizer.EncodeBatch(prompts, max, new TokenBatchOptions { PadToLength = Math.Min(max, longest + 1) });
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var ids = tensor(batch.Ids.ToArray(), [batch.BatchSize, batch.SequenceLength], device: model.Device);
        var mask = tensor(batch.AttentionMask.ToArray(), [batch.BatchSize, batch.SequenceLength], device: model.Device);
        var encoded = scorer.EncodePrompts(ids, mask).cpu().to(ScalarType.Float32).contiguous();
        var width = (int)encoded.shape[1];
        var flat = encoded.data<float>().ToArray();
        return [.. Enumerable.Range(0, batch.BatchSize).Select(r => flat.AsSpan(r * width, width).ToArray())];
    }
}
