namespace MedVlp.Evaluation;

/// <summary>Metrics of one class of a multi-class decision, one class against the rest.</summary>
/// <param name="Name">The class.</param>
/// <param name="Support">Examples whose true class this is.</param>
/// <param name="Auroc">One-vs-rest AUROC of the class probability (NaN when the class is absent or is every example).</param>
/// <param name="Auprc">One-vs-rest average precision of the class probability (NaN when the class is absent).</param>
/// <param name="Precision">Precision of the arg-max decision (0 when the class is never predicted).</param>
/// <param name="Recall">Recall (sensitivity) of the arg-max decision (NaN when the class is absent).</param>
/// <param name="F1">F1 of the arg-max decision (0 when there is no true positive).</param>
public sealed record ClassMetrics(string Name, int Support, double Auroc, double Auprc, double Precision, double Recall, double F1);

/// <summary>
/// Metrics of a multi-class classifier from its class probabilities, as scikit-learn computes them: accuracy and
/// balanced accuracy (mean recall) of the arg-max decision, and per class one-vs-rest AUROC, average precision,
/// precision, recall and F1, with their unweighted (macro) means over the classes where they are defined.
/// </summary>
public sealed record ClassificationReport
{
    /// <summary>Number of examples.</summary>
    public required int Count { get; init; }

    /// <summary>Fraction of examples whose arg-max class is the true one.</summary>
    public required double Accuracy { get; init; }

    /// <summary>Mean recall over the classes present (scikit-learn's <c>balanced_accuracy_score</c>).</summary>
    public required double BalancedAccuracy { get; init; }

    /// <summary>Mean one-vs-rest AUROC over the classes where it is defined (scikit-learn's <c>roc_auc_score(multi_class="ovr", average="macro")</c>).</summary>
    public required double MacroAuroc { get; init; }

    /// <summary>Mean average precision over the classes present.</summary>
    public required double MacroAuprc { get; init; }

    /// <summary>Mean F1 over all classes (scikit-learn's <c>f1_score(average="macro")</c>).</summary>
    public required double MacroF1 { get; init; }

    /// <summary>Per-class metrics, in class order.</summary>
    public required IReadOnlyList<ClassMetrics> Classes { get; init; }

    /// <summary>Computes the report.</summary>
    /// <param name="classes">Class names; class <c>c</c> is column <c>c</c> of <paramref name="probabilities"/>.</param>
    /// <param name="truth">The true class index of each example.</param>
    /// <param name="probabilities">Examples x classes scores (probabilities or any monotone scores; the arg-max is the decision).</param>
    /// <exception cref="ArgumentException">Shapes disagree, a class index is out of range, or a score is not finite.</exception>
    public static ClassificationReport Compute(IReadOnlyList<string> classes, ReadOnlySpan<int> truth, double[,] probabilities)
    {
        ArgumentNullException.ThrowIfNull(classes);
        ArgumentNullException.ThrowIfNull(probabilities);
        var n = truth.Length;
        var k = classes.Count;
        if (k < 2)
        {
            throw new ArgumentException($"{k} classes: a classification report needs at least two.", nameof(classes));
        }

        if (probabilities.GetLength(0) != n || probabilities.GetLength(1) != k)
        {
            throw new ArgumentException(
                $"Probabilities are {probabilities.GetLength(0)} x {probabilities.GetLength(1)}; expected {n} examples x {k} classes.", nameof(probabilities));
        }

        if (n == 0)
        {
            throw new ArgumentException("No examples.", nameof(truth));
        }

        var predicted = new int[n];
        for (var i = 0; i < n; i++)
        {
            if ((uint)truth[i] >= (uint)k)
            {
                throw new ArgumentException($"Example {i} has class index {truth[i]}; expected 0 to {k - 1}.", nameof(truth));
            }

            var best = 0;
            for (var c = 0; c < k; c++)
            {
                var p = probabilities[i, c];
                if (!double.IsFinite(p))
                {
                    throw new ArgumentException($"Example {i}, class {classes[c]}: score {p} is not finite.", nameof(probabilities));
                }

                if (p > probabilities[i, best])
                {
                    best = c;
                }
            }

            predicted[i] = best;
        }

        var perClass = new ClassMetrics[k];
        var correct = 0;
        for (var i = 0; i < n; i++)
        {
            correct += predicted[i] == truth[i] ? 1 : 0;
        }

        var scores = new double[n];
        var isClass = new bool[n];
        for (var c = 0; c < k; c++)
        {
            int tp = 0, fp = 0, fn = 0;
            for (var i = 0; i < n; i++)
            {
                scores[i] = probabilities[i, c];
                isClass[i] = truth[i] == c;
                if (predicted[i] == c)
                {
                    if (isClass[i]) { tp++; } else { fp++; }
                }
                else if (isClass[i])
                {
                    fn++;
                }
            }

            var ranks = BinaryMetrics.Compute(scores, isClass);
            var precision = tp + fp == 0 ? 0 : (double)tp / (tp + fp);
            var recall = tp + fn == 0 ? double.NaN : (double)tp / (tp + fn);
            var f1 = tp == 0 ? 0 : 2.0 * tp / ((2.0 * tp) + fp + fn);
            perClass[c] = new ClassMetrics(classes[c], tp + fn, ranks.Auroc, ranks.Auprc, precision, recall, f1);
        }

        return new ClassificationReport
        {
            Count = n,
            Accuracy = (double)correct / n,
            BalancedAccuracy = MeanDefined(perClass.Select(m => m.Recall)),
            MacroAuroc = MeanDefined(perClass.Select(m => m.Auroc)),
            MacroAuprc = MeanDefined(perClass.Select(m => m.Auprc)),
            MacroF1 = perClass.Average(m => m.F1),
            Classes = perClass,
        };
    }

    /// <summary>The mean of the values that are not NaN (NaN when none is).</summary>
    internal static double MeanDefined(IEnumerable<double> values)
    {
        double sum = 0;
        var count = 0;
        foreach (var v in values)
        {
            if (!double.IsNaN(v))
            {
                sum += v;
                count++;
            }
        }

        return count == 0 ? double.NaN : sum / count;
    }
}
