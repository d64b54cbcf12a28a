using MathNet.Numerics.LinearAlgebra;
using MathNet.Numerics.Optimization;

namespace MedVlp.Evaluation;

/// <summary>Options of <see cref="LinearProbe"/>.</summary>
public sealed class LinearProbeOptions
{
    /// <summary>Inverse L2 regularisation strength, as scikit-learn's <c>C</c> (default 1): the objective is
    /// <c>sum of cross-entropies + ||W||^2 / (2 C)</c>; intercepts are not penalised.</summary>
    public double C { get; init; } = 1.0;

    /// <summary>Standardise features to zero mean and unit variance on the training examples first (scikit-learn's
    /// <c>StandardScaler</c>; default true). Constant features are left unscaled.</summary>
    public bool Standardize { get; init; } = true;

    /// <summary>Largest number of L-BFGS iterations (default 5000).</summary>
    public int MaxIterations { get; init; } = 5000;

    /// <summary>Convergence tolerance on the gradient norm of the per-example objective (default 1e-9).</summary>
    public double Tolerance { get; init; } = 1e-9;

    internal void Validate()
    {
        if (!(C > 0) || !double.IsFinite(C) || MaxIterations <= 0 || !(Tolerance > 0))
        {
            throw new ArgumentException($"Invalid linear-probe options: C must be positive and finite (is {C}), MaxIterations positive (is {MaxIterations}), Tolerance positive (is {Tolerance}).");
        }
    }
}

/// <summary>Out-of-fold results of <see cref="LinearProbe.CrossValidate"/>.</summary>
/// <param name="Report">Metrics of the pooled out-of-fold predictions (every example predicted by a probe that never saw it).</param>
/// <param name="FoldAccuracies">Accuracy of each fold's probe on its held-out examples.</param>
/// <param name="Probabilities">Out-of-fold class probabilities, examples x classes.</param>
public sealed record LinearProbeResult(ClassificationReport Report, IReadOnlyList<double> FoldAccuracies, double[,] Probabilities);

/// <summary>
/// A linear probe: multinomial logistic regression with L2 regularisation, fitted by L-BFGS (MathNet.Numerics) on
/// frozen embeddings, the standard way to measure what an encoder has learned. It equals scikit-learn's
/// <c>make_pipeline(StandardScaler(), LogisticRegression(C=C, multi_class="multinomial"))</c>.
/// </summary>
public sealed class LinearProbe
{
    private readonly double[] _mean;
    private readonly double[] _scale;
    private readonly double[,] _weights;
    private readonly double[] _bias;

    private LinearProbe(double[] mean, double[] scale, double[,] weights, double[] bias, int iterations)
    {
        _mean = mean;
        _scale = scale;
        _weights = weights;
        _bias = bias;
        Iterations = iterations;
    }

    /// <summary>Number of classes.</summary>
    public int ClassCount => _bias.Length;

    /// <summary>Feature dimension.</summary>
    public int FeatureCount => _mean.Length;

    /// <summary>L-BFGS iterations the fit took.</summary>
    public int Iterations { get; }

    /// <summary>Fits the probe.</summary>
    /// <param name="features">One feature vector per example, all of one length.</param>
    /// <param name="labels">The class index of each example, in <c>[0, classCount)</c>.</param>
    /// <param name="classCount">Number of classes (at least 2).</param>
    /// <param name="options">Regularisation and solver settings.</param>
    /// <exception cref="ArgumentException">Inputs are empty, ragged, not finite, or a label is out of range.</exception>
    /// <exception cref="InvalidOperationException">L-BFGS did not converge within <see cref="LinearProbeOptions.MaxIterations"/>.</exception>
    public static LinearProbe Fit(IReadOnlyList<float[]> features, ReadOnlySpan<int> labels, int classCount, LinearProbeOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(features);
        options ??= new LinearProbeOptions();
        options.Validate();
        var d = CheckFeatures(features, labels.Length);
        if (classCount < 2)
        {
            throw new ArgumentException($"{classCount} classes: a probe needs at least two.", nameof(classCount));
        }

        var n = features.Count;
        var y = labels.ToArray();
        for (var i = 0; i < n; i++)
        {
            if ((uint)y[i] >= (uint)classCount)
            {
                throw new ArgumentException($"Example {i} has label {y[i]}; expected 0 to {classCount - 1}.", nameof(labels));
            }
        }

        var mean = new double[d];
        var scale = new double[d];
        Array.Fill(scale, 1.0);
        if (options.Standardize)
        {
            foreach (var row in features)
            {
                for (var j = 0; j < d; j++)
                {
                    mean[j] += row[j];
                }
            }

            for (var j = 0; j < d; j++)
            {
                mean[j] /= n;
            }

            var variance = new double[d];
            foreach (var row in features)
            {
                for (var j = 0; j < d; j++)
                {
                    var delta = row[j] - mean[j];
                    variance[j] += delta * delta;
                }
            }

            for (var j = 0; j < d; j++)
            {
                var sd = Math.Sqrt(variance[j] / n);
                scale[j] = sd > 1e-12 * Math.Max(1, Math.Abs(mean[j])) ? sd : 1.0;
            }
        }

        // Design matrix (n x d), standardised.
        var x = new double[n * d];
        for (var i = 0; i < n; i++)
        {
            var row = features[i];
            for (var j = 0; j < d; j++)
            {
                x[(i * d) + j] = (row[j] - mean[j]) / scale[j];
            }
        }

        var k = classCount;
        var objective = ObjectiveFunction.Gradient(theta => Objective(theta, x, y, n, d, k, options.C));
        var minimizer = new LimitedMemoryBfgsMinimizer(options.Tolerance, 0, 0, memory: 10, maximumIterations: options.MaxIterations);
        MinimizationResult result;
        try
        {
            result = minimizer.FindMinimum(objective, Vector<double>.Build.Dense((k * d) + k));
        }
        catch (MaximumIterationsException ex)
        {
            throw new InvalidOperationException(
                $"The linear probe did not converge in {options.MaxIterations} L-BFGS iterations ({n} examples, {d} features, {k} classes): raise MaxIterations or lower C.", ex);
        }

        var theta = result.MinimizingPoint;
        var weights = new double[k, d];
        var bias = new double[k];
        for (var c = 0; c < k; c++)
        {
            for (var j = 0; j < d; j++)
            {
                weights[c, j] = theta[(c * d) + j];
            }

            bias[c] = theta[(k * d) + c];
        }

        return new LinearProbe(mean, scale, weights, bias, result.Iterations);
    }

    /// <summary>Class probabilities of one feature vector.</summary>
    /// <exception cref="ArgumentException">The vector's length is not <see cref="FeatureCount"/>.</exception>
    public double[] PredictProbabilities(ReadOnlySpan<float> features)
    {
        if (features.Length != FeatureCount)
        {
            throw new ArgumentException($"The probe takes {FeatureCount} features; got {features.Length}.", nameof(features));
        }

        var k = ClassCount;
        var logits = new double[k];
        for (var c = 0; c < k; c++)
        {
            var z = _bias[c];
            for (var j = 0; j < FeatureCount; j++)
            {
                z += _weights[c, j] * ((features[j] - _mean[j]) / _scale[j]);
            }

            logits[c] = z;
        }

        Softmax(logits);
        return logits;
    }

    /// <summary>
    /// Stratified k-fold cross-validation: each fold's probe is fitted on the other folds and predicts its own examples;
    /// the report is computed on the pooled out-of-fold predictions.
    /// </summary>
    /// <param name="features">One feature vector per example.</param>
    /// <param name="labels">Class index per example.</param>
    /// <param name="classes">Class names (their count is the class count).</param>
    /// <param name="folds">Number of folds (at least 2, at most the size of the smallest class).</param>
    /// <param name="seed">Seed of the fold assignment.</param>
    /// <param name="options">Probe options.</param>
    /// <param name="progress">Receives the number of folds finished.</param>
    /// <param name="cancellationToken">Cancels between folds.</param>
    public static LinearProbeResult CrossValidate(
        IReadOnlyList<float[]> features,
        ReadOnlySpan<int> labels,
        IReadOnlyList<string> classes,
        int folds = 5,
        int seed = 0,
        LinearProbeOptions? options = null,
        IProgress<int>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(features);
        ArgumentNullException.ThrowIfNull(classes);
        CheckFeatures(features, labels.Length);
        var n = labels.Length;
        var k = classes.Count;
        var fold = AssignFolds(labels, k, folds, seed);
        var probabilities = new double[n, k];
        var accuracies = new double[folds];
        var y = labels.ToArray();
        for (var f = 0; f < folds; f++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var trainX = new List<float[]>();
            var trainY = new List<int>();
            for (var i = 0; i < n; i++)
            {
                if (fold[i] != f)
                {
                    trainX.Add(features[i]);
                    trainY.Add(y[i]);
                }
            }

            var probe = Fit(trainX, trainY.ToArray(), k, options);
            int correct = 0, count = 0;
            for (var i = 0; i < n; i++)
            {
                if (fold[i] != f)
                {
                    continue;
                }

                var p = probe.PredictProbabilities(features[i]);
                var best = 0;
                for (var c = 0; c < k; c++)
                {
                    probabilities[i, c] = p[c];
                    best = p[c] > p[best] ? c : best;
                }

                correct += best == y[i] ? 1 : 0;
                count++;
            }

            accuracies[f] = (double)correct / count;
            progress?.Report(f + 1);
        }

        return new LinearProbeResult(ClassificationReport.Compute(classes, labels, probabilities), accuracies, probabilities);
    }

    /// <summary>Stratified fold index per example: each class's examples are shuffled by seed and dealt round-robin.</summary>
    internal static int[] AssignFolds(ReadOnlySpan<int> labels, int classCount, int folds, int seed)
    {
        if (folds < 2)
        {
            throw new ArgumentException($"{folds} folds: cross-validation needs at least 2.", nameof(folds));
        }

        var byClass = new List<int>[classCount];
        for (var c = 0; c < classCount; c++)
        {
            byClass[c] = [];
        }

        for (var i = 0; i < labels.Length; i++)
        {
            if ((uint)labels[i] >= (uint)classCount)
            {
                throw new ArgumentException($"Example {i} has label {labels[i]}; expected 0 to {classCount - 1}.", nameof(labels));
            }

            byClass[labels[i]].Add(i);
        }

        var present = byClass.Where(l => l.Count > 0).ToList();
        if (present.Count < 2)
        {
            throw new ArgumentException("Only one class occurs in the labels: a probe needs examples of at least two classes.", nameof(labels));
        }

        var smallest = present.Min(l => l.Count);
        if (smallest < folds)
        {
            throw new ArgumentException($"The smallest class has {smallest} examples, fewer than the {folds} folds: use fewer folds or more data.", nameof(folds));
        }

        var random = new Random(seed);
        var fold = new int[labels.Length];
        var next = 0;
        foreach (var members in byClass)
        {
            var shuffled = members.ToArray();
            random.Shuffle(shuffled);
            foreach (var i in shuffled)
            {
                fold[i] = next;
                next = (next + 1) % folds;
            }
        }

        return fold;
    }

    private static int CheckFeatures(IReadOnlyList<float[]> features, int labelCount)
    {
        if (features.Count == 0)
        {
            throw new ArgumentException("No examples to fit.", nameof(features));
        }

        if (features.Count != labelCount)
        {
            throw new ArgumentException($"{features.Count} feature vectors but {labelCount} labels.", nameof(features));
        }

        var d = features[0]?.Length ?? 0;
        if (d == 0)
        {
            throw new ArgumentException("Feature vectors are empty.", nameof(features));
        }

        for (var i = 0; i < features.Count; i++)
        {
            var row = features[i] ?? throw new ArgumentException($"Feature vector {i} is null.", nameof(features));
            if (row.Length != d)
            {
                throw new ArgumentException($"Feature vector {i} has {row.Length} values; vector 0 has {d}.", nameof(features));
            }

            foreach (var v in row)
            {
                if (!float.IsFinite(v))
                {
                    throw new ArgumentException($"Feature vector {i} holds {v}: features must be finite.", nameof(features));
                }
            }
        }

        return d;
    }

    /// <summary>Mean over examples of (cross-entropy) plus ||W||^2 / (2 C n), and its gradient.</summary>
    private static (double, Vector<double>) Objective(Vector<double> theta, double[] x, int[] y, int n, int d, int k, double c)
    {
        var gradient = new double[theta.Count];
        var logits = new double[k];
        double loss = 0;
        for (var i = 0; i < n; i++)
        {
            var row = x.AsSpan(i * d, d);
            for (var cls = 0; cls < k; cls++)
            {
                var z = theta[(k * d) + cls];
                for (var j = 0; j < d; j++)
                {
                    z += theta[(cls * d) + j] * row[j];
                }

                logits[cls] = z;
            }

            var max = logits.Max();
            double sum = 0;
            for (var cls = 0; cls < k; cls++)
            {
                sum += Math.Exp(logits[cls] - max);
            }

            var logSum = max + Math.Log(sum);
            loss += logSum - logits[y[i]];
            for (var cls = 0; cls < k; cls++)
            {
                var g = Math.Exp(logits[cls] - logSum) - (cls == y[i] ? 1 : 0);
                for (var j = 0; j < d; j++)
                {
                    gradient[(cls * d) + j] += g * row[j];
                }

                gradient[(k * d) + cls] += g;
            }
        }

        double penalty = 0;
        for (var p = 0; p < k * d; p++)
        {
            penalty += theta[p] * theta[p];
            gradient[p] += theta[p] / c;
        }

        loss += penalty / (2 * c);
        for (var p = 0; p < gradient.Length; p++)
        {
            gradient[p] /= n;
        }

        return (loss / n, Vector<double>.Build.Dense(gradient));
    }

    private static void Softmax(double[] logits)
    {
        var max = logits.Max();
        double sum = 0;
        for (var c = 0; c < logits.Length; c++)
        {
            logits[c] = Math.Exp(logits[c] - max);
            sum += logits[c];
        }

        for (var c = 0; c < logits.Length; c++)
        {
            logits[c] /= sum;
        }
    }
}
