using MedVlp.Evaluation;
using MedVlp.Modeling;
using MedVlp.Text;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MedVlp.Architectures.Colipri;

/// <summary>A finding and its zero-shot prompts: several wordings each for present and absent are averaged.</summary>
/// <param name="Name">The finding.</param>
/// <param name="Positive">Prompts stating the finding ("Lung nodules").</param>
/// <param name="Negative">Prompts negating it ("No lung nodules").</param>
public sealed record FindingPrompts(string Name, IReadOnlyList<string> Positive, IReadOnlyList<string> Negative);

/// <summary>Per-finding zero-shot metrics and their macro averages.</summary>
/// <param name="Findings">Metrics per finding (threshold 0.5 on the pair probability).</param>
/// <param name="MacroAuroc">Mean AUROC over the findings where it is defined.</param>
/// <param name="MacroAuprc">Mean average precision.</param>
/// <param name="MacroF1">Mean F1.</param>
/// <param name="MacroBalancedAccuracy">Mean balanced accuracy.</param>
public sealed record FindingEvaluation(IReadOnlyDictionary<string, BinaryMetrics> Findings, double MacroAuroc, double MacroAuprc, double MacroF1, double MacroBalancedAccuracy);

/// <summary>
/// COLIPRI's zero-shot rule: for each finding, the image embedding is compared with the (prompt-averaged, normalised)
/// positive and negative text embeddings, and the probability of the finding is the softmax over that pair of scaled
/// similarities.
/// </summary>
public sealed class FindingZeroShot
{
    private readonly float[][] positive;
    private readonly float[][] negative;
    private readonly double scale;

    /// <summary>Embeds the prompts once with a dual encoder's text tower (a <see cref="ColipriModel"/> or any other).</summary>
    public FindingZeroShot(IDualEncoder model, TextTokenizer tokenizer, IReadOnlyList<FindingPrompts> findings)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(findings);
        Findings = findings;
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        positive = [.. findings.Select(f => Embed(model, tokenizer, f.Positive))];
        negative = [.. findings.Select(f => Embed(model, tokenizer, f.Negative))];
        scale = model.LogitScale().ToDouble();
    }

    /// <summary>The findings, in output order.</summary>
    public IReadOnlyList<FindingPrompts> Findings { get; }

    /// <summary>The probability of each finding for one L2-normalised image embedding.</summary>
    public double[] Predict(ReadOnlySpan<float> image)
    {
        var result = new double[positive.Length];
        for (var f = 0; f < positive.Length; f++)
        {
            double p = 0, n = 0;
            for (var i = 0; i < image.Length; i++)
            {
                p += image[i] * positive[f][i];
                n += image[i] * negative[f][i];
            }

            result[f] = 1 / (1 + Math.Exp(-scale * (p - n)));
        }

        return result;
    }

    /// <summary>Scores image embeddings against true labels (true = present) per finding.</summary>
    public FindingEvaluation Evaluate(IReadOnlyList<float[]> images, IReadOnlyList<bool[]> truth)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(truth);
        var scores = images.Select(i => Predict(i)).ToArray();
        var metrics = new Dictionary<string, BinaryMetrics>(StringComparer.Ordinal);
        for (var f = 0; f < Findings.Count; f++)
        {
            metrics[Findings[f].Name] = BinaryMetrics.Compute(scores.Select(s => s[f]).ToArray(), truth.Select(t => t[f]).ToArray());
        }

        return new FindingEvaluation(
            metrics,
            ClassificationReport.MeanDefined(metrics.Values.Select(m => m.Auroc)),
            ClassificationReport.MeanDefined(metrics.Values.Select(m => m.Auprc)),
            metrics.Values.Average(m => m.F1),
            ClassificationReport.MeanDefined(metrics.Values.Select(m => m.BalancedAccuracy)));
    }

    private static float[] Embed(IDualEncoder model, TextTokenizer tokenizer, IReadOnlyList<string> prompts)
    {
        if (prompts.Count == 0)
        {
            throw new ArgumentException("A finding needs at least one positive and one negative prompt.", nameof(prompts));
        }

        var encoded = tokenizer.EncodeBatch(prompts, model.MaxTextTokens);
        var ids = tensor(encoded.Ids.ToArray(), [encoded.BatchSize, encoded.SequenceLength]);
        var mask = tensor(encoded.AttentionMask.ToArray(), [encoded.BatchSize, encoded.SequenceLength]);
        var mean = F.normalize(model.EncodeTexts(ids, mask).mean([0]), dim: 0);
        return mean.data<float>().ToArray();
    }
}
