using System.Numerics.Tensors;
using MedVlp.Volumes;

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
/// Safe for concurrent callers.
/// </summary>
public sealed class ZeroShotClassifier
{
    private readonly VisionLanguageModel _model;
    private readonly float[][] _classEmbeddings;
    private readonly float _scale;

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
    }

    /// <summary>The labels, in the order of the probabilities.</summary>
    public IReadOnlyList<ZeroShotLabel> Labels { get; }

    /// <summary>Classifies one volume.</summary>
    public ZeroShotPrediction Classify(Volume volume) => WithVolumeWarnings(ClassifyEmbedding(_model.VolumeEncoder.Embed(volume)), volume);

    /// <summary>Classifies several volumes (embedded in batches).</summary>
    public IReadOnlyList<ZeroShotPrediction> Classify(IReadOnlyList<Volume> volumes, CancellationToken cancellationToken = default) =>
        _model.VolumeEncoder.Embed(volumes, cancellationToken).Select((e, n) => WithVolumeWarnings(ClassifyEmbedding(e), volumes[n])).ToArray();

    private static ZeroShotPrediction WithVolumeWarnings(ZeroShotPrediction prediction, Volume volume) =>
        volume.CountNonFinite().Describe() is { } bad ? prediction with { Warnings = [$"the volume's voxels are not all finite: {bad}", .. prediction.Warnings] } : prediction;

    /// <summary>Classifies a volume embedding made by this model's <see cref="VolumeEncoder"/>.</summary>
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
}
