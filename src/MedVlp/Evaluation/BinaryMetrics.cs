namespace MedVlp.Evaluation;

/// <summary>
/// Threshold-free and thresholded metrics of one binary decision (a finding present or absent, one class against the
/// rest), computed as scikit-learn does: <c>roc_auc_score</c>, <c>average_precision_score</c>, <c>f1_score</c>,
/// <c>balanced_accuracy_score</c>.
/// </summary>
/// <param name="Support">Number of positive examples.</param>
/// <param name="Count">Number of examples.</param>
/// <param name="Auroc">Area under the ROC curve (ties count one half); <see cref="double.NaN"/> when one class is absent.</param>
/// <param name="Auprc">Average precision (the step-wise area under the precision-recall curve); NaN without positives.</param>
/// <param name="F1">F1 score of the thresholded decision (0 when there is no true positive).</param>
/// <param name="BalancedAccuracy">Mean of sensitivity and specificity of the thresholded decision (NaN terms are left out).</param>
/// <param name="Accuracy">Fraction of correct thresholded decisions.</param>
/// <param name="Threshold">The score at or above which an example counts as positive.</param>
public sealed record BinaryMetrics(int Support, int Count, double Auroc, double Auprc, double F1, double BalancedAccuracy, double Accuracy, double Threshold)
{
    /// <summary>Computes every metric for scores (higher means positive) and true labels.</summary>
    /// <param name="scores">One score per example (a probability, a logit or a similarity: only the order matters for AUROC/AUPRC).</param>
    /// <param name="labels">The true labels.</param>
    /// <param name="threshold">The decision threshold of F1, balanced accuracy and accuracy (0.5 for probabilities).</param>
    /// <exception cref="ArgumentException">The spans differ in length, are empty, or a score is not finite.</exception>
    public static BinaryMetrics Compute(ReadOnlySpan<double> scores, ReadOnlySpan<bool> labels, double threshold = 0.5)
    {
        if (scores.Length != labels.Length)
        {
            throw new ArgumentException($"{scores.Length} scores but {labels.Length} labels: one score per label is expected.", nameof(labels));
        }

        if (scores.Length == 0)
        {
            throw new ArgumentException("No examples: metrics need at least one score.", nameof(scores));
        }

        for (var i = 0; i < scores.Length; i++)
        {
            if (!double.IsFinite(scores[i]))
            {
                throw new ArgumentException($"Score {i} is {scores[i]}: every score must be finite.", nameof(scores));
            }
        }

        int tp = 0, fp = 0, tn = 0, fn = 0;
        for (var i = 0; i < scores.Length; i++)
        {
            var predicted = scores[i] >= threshold;
            if (labels[i])
            {
                if (predicted) { tp++; } else { fn++; }
            }
            else if (predicted)
            {
                fp++;
            }
            else
            {
                tn++;
            }
        }

        var positives = tp + fn;
        var negatives = tn + fp;
        var f1 = tp == 0 ? 0 : 2.0 * tp / ((2.0 * tp) + fp + fn);
        var sensitivity = positives == 0 ? double.NaN : (double)tp / positives;
        var specificity = negatives == 0 ? double.NaN : (double)tn / negatives;
        var balanced = (double.IsNaN(sensitivity), double.IsNaN(specificity)) switch
        {
            (false, false) => (sensitivity + specificity) / 2,
            (true, false) => specificity,
            (false, true) => sensitivity,
            _ => double.NaN,
        };
        var (auroc, auprc) = RankMetrics(scores, labels, positives, negatives);
        return new BinaryMetrics(positives, scores.Length, auroc, auprc, f1, balanced, (double)(tp + tn) / scores.Length, threshold);
    }

    /// <summary>AUROC (trapezoids over distinct thresholds, equal to Mann-Whitney U with half-counted ties) and average precision.</summary>
    private static (double Auroc, double Auprc) RankMetrics(ReadOnlySpan<double> scores, ReadOnlySpan<bool> labels, int positives, int negatives)
    {
        var order = new int[scores.Length];
        for (var i = 0; i < order.Length; i++)
        {
            order[i] = i;
        }

        var keys = scores.ToArray();
        Array.Sort(keys, order);
        Array.Reverse(order);

        // Walk thresholds from the highest score down; examples with equal scores enter together.
        double tp = 0, fp = 0, area = 0, precisionSum = 0;
        var n = 0;
        while (n < order.Length)
        {
            var score = scores[order[n]];
            double dtp = 0, dfp = 0;
            while (n < order.Length && scores[order[n]] == score)
            {
                if (labels[order[n]]) { dtp++; } else { dfp++; }
                n++;
            }

            // ROC: trapezoid between (fp, tp) and (fp + dfp, tp + dtp).
            area += dfp * (tp + (dtp / 2));
            tp += dtp;
            fp += dfp;

            // Average precision: sum over thresholds of (R_n - R_{n-1}) * P_n.
            if (dtp > 0)
            {
                precisionSum += dtp * (tp / (tp + fp));
            }
        }

        var auroc = positives == 0 || negatives == 0 ? double.NaN : area / ((double)positives * negatives);
        var auprc = positives == 0 ? double.NaN : precisionSum / positives;
        return (auroc, auprc);
    }
}
