using MedVlp.Data;
using MedVlp.Synthetic;
using MedVlp.Training;
using MedVlp.Volumes;
using MedVlp.Volumes.Transforms;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Architectures.Colipri;

/// <summary>
/// COLIPRI on chest CT findings: the finding definitions its report labeler and opposite-sentence loss use, the
/// zero-shot prompts (the model card's "Lung nodules" / "No lung nodules" form), the synthetic training set of
/// <c>medvlp train --recipe colipri --synthetic N</c> (<see cref="SyntheticChestDataset"/>), and held-out zero-shot
/// evaluation.
/// </summary>
public static class ColipriChest
{
    /// <summary>The five synthetic findings as the labeler reads them (keywords) and their opposite sentences (worded
    /// unlike the zero-shot prompts, so zero-shot is not scored on training sentences).</summary>
    public static IReadOnlyList<FindingDefinition> Findings { get; } =
    [
        new("lung_nodule", ["nodule"], "There is a pulmonary nodule.", "There is no pulmonary nodule."),
        new("pleural_effusion", ["effusion"], "There is a pleural effusion.", "There is no pleural effusion."),
        new("cardiomegaly", ["cardiomegaly", "heart", "cardiac"], "The heart is enlarged.", "The heart is not enlarged."),
        new("emphysema", ["emphysema"], "There is emphysema.", "There is no emphysema."),
        new("consolidation", ["consolidation"], "There is a consolidation.", "There is no consolidation."),
    ];

    /// <summary>The zero-shot prompt pair of each synthetic finding ("Lung nodules" / "No lung nodules").</summary>
    public static IReadOnlyList<FindingPrompts> Prompts { get; } =
        [.. ChestFindingExtensions.All.Select(f => new FindingPrompts(f.Key(), [f.PositivePrompt()], [f.NegativePrompt()]))];

    /// <summary>
    /// Generates synthetic chest CTs (cases 0 .. count-1 train, count .. count+heldOut-1 held out), passes each through
    /// <paramref name="preprocessing"/> as it is made (only model-sized volumes are kept), and withholds the report of
    /// every <paramref name="imageOnlyEvery"/>-th training case (index % n == n - 1) so paired and image-only examples mix.
    /// The set's <see cref="SyntheticTrainingSet.Evaluate"/> is held-out zero-shot AUROC per finding and macro.
    /// </summary>
    /// <param name="preprocessing">The model's preprocessing.</param>
    /// <param name="count">Training cases.</param>
    /// <param name="heldOut">Held-out cases.</param>
    /// <param name="seed">The dataset seed.</param>
    /// <param name="imageOnlyEvery">Every n-th training case is image-only (0: none).</param>
    /// <param name="options">Grid and prevalence options of the phantoms (null: defaults).</param>
    /// <param name="progress">Receives the number of cases made.</param>
    /// <param name="cancellationToken">Stops the generation.</param>
    public static SyntheticTrainingSet CreateSyntheticSet(TransformPipeline preprocessing, int count, int heldOut, int seed, int imageOnlyEvery = 4,
        SyntheticChestOptions? options = null, IProgress<int>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(preprocessing);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfNegative(heldOut);
        ArgumentOutOfRangeException.ThrowIfNegative(imageOnlyEvery);
        var volumes = new Volume[count + heldOut];
        var reports = new string[count + heldOut];
        var labels = new IReadOnlyDictionary<string, bool>[count + heldOut];
        var done = 0;
        Parallel.For(0, volumes.Length, new ParallelOptions { CancellationToken = cancellationToken }, n =>
        {
            var c = SyntheticChestDataset.GenerateCase(seed, n, options);
            volumes[n] = preprocessing.Apply(c.Volume);
            reports[n] = n < count && imageOnlyEvery > 0 && n % imageOnlyEvery == imageOnlyEvery - 1 ? "" : c.Report;
            labels[n] = c.Findings.ToDictionary(f => f.Key.Key(), f => f.Value, StringComparer.Ordinal);
            progress?.Report(Interlocked.Increment(ref done));
        });
        var heldOutVolumes = volumes[count..];
        var heldOutLabels = labels[count..];
        return new SyntheticTrainingSet(volumes[..count], reports[..count], heldOutVolumes, reports[count..])
        {
            HeldOutLabels = heldOutLabels,
            Evaluate = HeldOutEvaluation(heldOutVolumes, heldOutLabels),
        };
    }

    // A static factory, so the evaluation's closure holds the held-out volumes only (a lambda in CreateSyntheticSet would
    // share its closure with the generation loop and keep every training volume alive as long as the set's evaluation).
    private static Func<VisionLanguageModel, CancellationToken, IReadOnlyDictionary<string, double>> HeldOutEvaluation(
        Volume[] volumes, IReadOnlyDictionary<string, bool>[] labels) =>
        (model, token) => Metrics(model, Embed(model, volumes, token), labels);

    /// <summary>
    /// Zero-shot evaluation of a dual-encoder package on preprocessed volumes (the model's input) with known findings:
    /// per finding the softmax over its prompt pair (<see cref="FindingZeroShot"/>), then AUROC, AUPRC, F1 and balanced accuracy.
    /// </summary>
    /// <param name="model">A dual-encoder package (COLIPRI or another).</param>
    /// <param name="preprocessed">Volumes already through the model's preprocessing.</param>
    /// <param name="labels">Per volume, each finding's truth (keys of <see cref="Prompts"/>).</param>
    /// <param name="cancellationToken">Stops between chunks.</param>
    public static FindingEvaluation EvaluateZeroShot(VisionLanguageModel model, IReadOnlyList<Volume> preprocessed, IReadOnlyList<IReadOnlyDictionary<string, bool>> labels,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(preprocessed);
        ArgumentNullException.ThrowIfNull(labels);
        return EvaluateZeroShot(model, Embed(model, preprocessed, cancellationToken), labels);
    }

    private static FindingEvaluation EvaluateZeroShot(VisionLanguageModel model, IReadOnlyList<float[]> embeddings, IReadOnlyList<IReadOnlyDictionary<string, bool>> labels)
    {
        var zeroShot = new FindingZeroShot(model.DualEncoder, model.Tokenizer, Prompts);
        return zeroShot.Evaluate(embeddings, [.. labels.Select(l => Prompts.Select(p => l.TryGetValue(p.Name, out var v) ? v
            : throw new ArgumentException($"A held-out label set has no \"{p.Name}\" (it has {string.Join(", ", l.Keys)}).", nameof(labels))).ToArray())]);
    }

    /// <summary>L2-normalised image embeddings of preprocessed volumes (in chunks of 16, without gradients).</summary>
    public static IReadOnlyList<float[]> Embed(VisionLanguageModel model, IReadOnlyList<Volume> preprocessed, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(preprocessed);
        var shape = (model.Module as Modeling.IVolumeInputModel)?.ImageInputShape;
        var result = new List<float[]>(preprocessed.Count);
        using var noGrad = no_grad();
        foreach (var chunk in preprocessed.Chunk(16))
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            var e = model.DualEncoder.EncodeImages(Collator.CollateVolumes(chunk, shape, model.Device)).cpu();
            for (var i = 0; i < chunk.Length; i++)
            {
                result.Add(e[i].data<float>().ToArray());
            }
        }

        return result;
    }

    private static Dictionary<string, double> Metrics(VisionLanguageModel model, IReadOnlyList<float[]> embeddings, IReadOnlyList<IReadOnlyDictionary<string, bool>> labels)
    {
        var evaluation = EvaluateZeroShot(model, embeddings, labels);
        var metrics = new Dictionary<string, double>(StringComparer.Ordinal)
        {
            ["val/zero_shot_macro_auroc"] = evaluation.MacroAuroc,
            ["val/zero_shot_macro_balanced_accuracy"] = evaluation.MacroBalancedAccuracy,
        };
        foreach (var (name, m) in evaluation.Findings)
        {
            metrics[$"val/auroc_{name}"] = m.Auroc;
        }

        // How far apart the volumes' embeddings are (a collapsed image tower gives ~0).
        var dims = embeddings[0].Length;
        var spread = Enumerable.Range(0, dims).Average(d =>
        {
            var mean = embeddings.Average(v => v[d]);
            return Math.Sqrt(embeddings.Average(v => (v[d] - mean) * (v[d] - mean)));
        });
        metrics["val/image_embedding_std"] = spread;
        return metrics;
    }
}
