using System.Text.Json;
using MedVlp.Evaluation;
using MedVlp.Testing;
using Xunit;

namespace MedVlp.Tests.Evaluation;

/// <summary>MedVlp.Evaluation against scikit-learn (tests/golden/make_metrics_golden.py -> data/metrics.json).</summary>
public sealed class MetricsGoldenTests
{
    private static readonly JsonElement Golden = JsonDocument.Parse(File.ReadAllText(TestData.Golden("metrics.json"))).RootElement;

    public static TheoryData<int> BinaryCases() => Indices("binary");

    public static TheoryData<int> MulticlassCases() => Indices("multiclass");

    public static TheoryData<int> ProbeCases() => Indices("probe");

    [Theory]
    [MemberData(nameof(BinaryCases))]
    public void BinaryMetricsEqualScikitLearn(int index)
    {
        var c = Golden.GetProperty("binary")[index];
        var scores = Doubles(c.GetProperty("scores"));
        var labels = c.GetProperty("labels").EnumerateArray().Select(e => e.GetBoolean()).ToArray();
        var m = BinaryMetrics.Compute(scores, labels, c.GetProperty("threshold").GetDouble());
        Assert.Equal(c.GetProperty("auroc").GetDouble(), m.Auroc, 12);
        Assert.Equal(c.GetProperty("auprc").GetDouble(), m.Auprc, 12);
        Assert.Equal(c.GetProperty("f1").GetDouble(), m.F1, 12);
        Assert.Equal(c.GetProperty("balanced_accuracy").GetDouble(), m.BalancedAccuracy, 12);
        Assert.Equal(c.GetProperty("accuracy").GetDouble(), m.Accuracy, 12);
        Assert.Equal(labels.Count(l => l), m.Support);
    }

    [Theory]
    [MemberData(nameof(MulticlassCases))]
    public void ClassificationReportEqualsScikitLearn(int index)
    {
        var c = Golden.GetProperty("multiclass")[index];
        var classes = c.GetProperty("classes").EnumerateArray().Select(e => e.GetString()!).ToArray();
        var truth = c.GetProperty("truth").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var rows = c.GetProperty("probabilities").EnumerateArray().Select(Doubles).ToArray();
        var probabilities = new double[rows.Length, classes.Length];
        for (var i = 0; i < rows.Length; i++)
        {
            for (var k = 0; k < classes.Length; k++)
            {
                probabilities[i, k] = rows[i][k];
            }
        }

        var report = ClassificationReport.Compute(classes, truth, probabilities);
        Assert.Equal(c.GetProperty("accuracy").GetDouble(), report.Accuracy, 12);
        Assert.Equal(c.GetProperty("balanced_accuracy").GetDouble(), report.BalancedAccuracy, 12);
        Assert.Equal(c.GetProperty("macro_auroc").GetDouble(), report.MacroAuroc, 12);
        Assert.Equal(c.GetProperty("macro_auprc").GetDouble(), report.MacroAuprc, 12);
        Assert.Equal(c.GetProperty("macro_f1").GetDouble(), report.MacroF1, 12);
        var precision = Doubles(c.GetProperty("precision"));
        var recall = Doubles(c.GetProperty("recall"));
        var f1 = Doubles(c.GetProperty("f1"));
        for (var k = 0; k < classes.Length; k++)
        {
            Assert.Equal(precision[k], report.Classes[k].Precision, 12);
            Assert.Equal(recall[k], report.Classes[k].Recall, 12);
            Assert.Equal(f1[k], report.Classes[k].F1, 12);
        }
    }

    [Theory]
    [MemberData(nameof(ProbeCases))]
    public void LinearProbeEqualsScikitLearnLogisticRegression(int index)
    {
        var c = Golden.GetProperty("probe")[index];
        var x = c.GetProperty("x").EnumerateArray().Select(Floats).ToArray();
        var y = c.GetProperty("y").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var probe = LinearProbe.Fit(x, y, c.GetProperty("classes").GetInt32(), new LinearProbeOptions { C = c.GetProperty("c").GetDouble(), Tolerance = 1e-12 });
        var tests = c.GetProperty("x_test").EnumerateArray().Select(Floats).ToArray();
        var expected = c.GetProperty("probabilities").EnumerateArray().Select(Doubles).ToArray();
        var worst = 0.0;
        for (var i = 0; i < tests.Length; i++)
        {
            var p = probe.PredictProbabilities(tests[i]);
            for (var k = 0; k < p.Length; k++)
            {
                worst = Math.Max(worst, Math.Abs(p[k] - expected[i][k]));
            }
        }

        Assert.True(worst < 1e-5, $"largest probability difference to scikit-learn: {worst:E2}");
    }

    [Fact]
    public void CrossValidationIsStratifiedDeterministicAndOutOfFold()
    {
        var c = Golden.GetProperty("probe")[0];
        var x = c.GetProperty("x").EnumerateArray().Select(Floats).ToArray();
        var y = c.GetProperty("y").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var classes = new[] { "a", "b", "c" };
        var folds = LinearProbe.AssignFolds(y, 3, 5, seed: 3);
        for (var k = 0; k < 3; k++)
        {
            var perFold = Enumerable.Range(0, 5).Select(f => Enumerable.Range(0, y.Length).Count(i => y[i] == k && folds[i] == f)).ToArray();
            Assert.True(perFold.Max() - perFold.Min() <= 1, $"class {k} is spread {string.Join(",", perFold)} over the folds");
        }

        var first = LinearProbe.CrossValidate(x, y, classes, folds: 5, seed: 3);
        var second = LinearProbe.CrossValidate(x, y, classes, folds: 5, seed: 3);
        Assert.Equal(first.Report.Accuracy, second.Report.Accuracy);
        Assert.Equal(5, first.FoldAccuracies.Count);

        // Separable-ish data: the out-of-fold probe is far above chance (1/3), but not trained on its own examples.
        Assert.InRange(first.Report.Accuracy, 0.6, 1.0);
        var shuffled = y.ToArray();
        new Random(1).Shuffle(shuffled);
        var chance = LinearProbe.CrossValidate(x, shuffled, classes, folds: 5, seed: 3);
        Assert.True(chance.Report.Accuracy < first.Report.Accuracy - 0.2, $"shuffled labels scored {chance.Report.Accuracy:F3} vs {first.Report.Accuracy:F3}");
    }

    [Fact]
    public void BadInputsAreNamed()
    {
        var ex = Assert.Throws<ArgumentException>(() => BinaryMetrics.Compute([0.1, double.NaN], [true, false]));
        Assert.Contains("Score 1", ex.Message, StringComparison.Ordinal);
        ex = Assert.Throws<ArgumentException>(() => LinearProbe.Fit([[1f, 2f], [1f]], [0, 1], 2));
        Assert.Contains("Feature vector 1 has 1 values", ex.Message, StringComparison.Ordinal);
        ex = Assert.Throws<ArgumentException>(() => LinearProbe.AssignFolds([0, 0, 0, 1], 2, 2, 0));
        Assert.Contains("smallest class has 1", ex.Message, StringComparison.Ordinal);
        var undefined = BinaryMetrics.Compute([0.2, 0.9], [true, true]);
        Assert.True(double.IsNaN(undefined.Auroc));
        Assert.Equal(1.0, undefined.Auprc, 12);
    }

    private static TheoryData<int> Indices(string name)
    {
        var data = new TheoryData<int>();
        for (var i = 0; i < Golden.GetProperty(name).GetArrayLength(); i++)
        {
            data.Add(i);
        }

        return data;
    }

    private static double[] Doubles(JsonElement e) => e.EnumerateArray().Select(v => v.GetDouble()).ToArray();

    private static float[] Floats(JsonElement e) => e.EnumerateArray().Select(v => v.GetSingle()).ToArray();
}
