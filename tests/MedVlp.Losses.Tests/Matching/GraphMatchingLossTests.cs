using Xunit.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Losses.Tests.Matching;

/// <summary>GraphMatchingLoss: values on known matchings, options, and training experiments with each estimator.</summary>
public sealed class GraphMatchingLossTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(GraphMatchingOrder.First)]
    [InlineData(GraphMatchingOrder.Second)]
    public void HammingDistanceToIdentityOfAPermutedCopy(GraphMatchingOrder order)
    {
        using var scope = NewDisposeScope();
        random.manual_seed(1);
        const int n = 12;
        var z = randn(n, 8);
        var p = new long[] { 1, 0, 2, 3, 5, 4, 6, 7, 8, 9, 11, 10 }; // three swaps: 6 rows out of place
        var view2 = z.index_select(0, tensor(p));
        using var loss = new GraphMatchingLoss(new GraphMatchingLossOptions { Order = order, Neighbors = 3 });
        using var same = loss.call(new GraphMatchingInput(z, z.clone()));
        Assert.Equal(0f, same.Total.item<float>());
        using var swapped = loss.call(new GraphMatchingInput(z, view2));
        Assert.Equal(2f * 6 / n, swapped.Total.item<float>(), 5);
        Assert.Equal(swapped.Total.item<float>(), swapped.Terms["hamming"].item<float>());

        // Row i of view 1 is row p^-1(i) of view 2; p is an involution here.
        Assert.Equal(p.Select(x => (int)x).ToArray(), loss.Match(new GraphMatchingInput(z, view2)));
    }

    [Fact]
    public void LocalAffinityIsMeanOfBestLocalCosine()
    {
        using var scope = NewDisposeScope();
        random.manual_seed(2);
        const int n = 4;
        var l1 = randn(n, 3, 5);
        var l2 = randn(n, 2, 5);

        // Global embeddings identical for all rows: only the local term can distinguish, so Match follows it.
        var g = ones(n, 6);
        using var loss = new GraphMatchingLoss(new GraphMatchingLossOptions { Order = GraphMatchingOrder.First, LocalWeight = 1 });
        var a = l1.data<float>().ToArray();
        var b = l2.data<float>().ToArray();
        var local = new double[n, n];
        for (var i = 0; i < n; i++)
        {
            for (var j = 0; j < n; j++)
            {
                var sum = 0.0;
                for (var pp = 0; pp < 3; pp++)
                {
                    var best = double.NegativeInfinity;
                    for (var q = 0; q < 2; q++)
                    {
                        best = Math.Max(best, Cos(a.AsSpan(((i * 3) + pp) * 5, 5), b.AsSpan(((j * 2) + q) * 5, 5)));
                    }

                    sum += best;
                }

                local[i, j] = sum / 3;
            }
        }

        var expected = LinearAssignment.Solve(local, maximize: true);
        Assert.Equal(expected, loss.Match(new GraphMatchingInput(g, g.clone(), l1, l2)));
    }

    [Fact]
    public void MessagePassingAddsParametersAndStartsAsIdentity()
    {
        using var scope = NewDisposeScope();
        using var plain = new GraphMatchingLoss(new GraphMatchingLossOptions { Order = GraphMatchingOrder.First });
        using var withMp = new GraphMatchingLoss(new GraphMatchingLossOptions { MessagePassingDim = 8 });
        Assert.Empty(plain.parameters());
        Assert.Equal(2, withMp.parameters().Count());
        random.manual_seed(3);
        var z = randn(10, 8);
        var edges = GraphEdges.Complete(10);
        using var mp = new GraphMessagePassing(8);
        Assert.Equal(z.data<float>().ToArray(), mp.call(z, edges).data<float>().ToArray());
    }

    [Theory]
    [InlineData(MatchingGradientEstimator.BlackBox, GraphMatchingOrder.Second)]
    [InlineData(MatchingGradientEstimator.Imle, GraphMatchingOrder.First)]
    public void ForwardAndBackwardLeakNoTensors(MatchingGradientEstimator estimator, GraphMatchingOrder order)
    {
        random.manual_seed(4);
        using var outer = NewDisposeScope();
        var a = randn(10, 6, requires_grad: true);
        var b = randn(10, 6, requires_grad: true);
        using var loss = new GraphMatchingLoss(new GraphMatchingLossOptions { Estimator = estimator, Order = order, Neighbors = 3, MessagePassingDim = 6 });
        using (var warm = loss.call(new GraphMatchingInput(a, b)))
        {
            warm.Total.backward();
        }

        // Under a training-step scope nothing accumulates across steps.
        var before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (var i = 0; i < 5; i++)
        {
            using var step = NewDisposeScope();
            using var output = loss.call(new GraphMatchingInput(a, b));
            output.Total.backward();
            _ = loss.Match(new GraphMatchingInput(a, b));
        }

        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);

        // Without one, only TorchSharp's wrappers of the custom function's gradients stay in the caller's scope: the
        // incoming dL/dX and one outgoing gradient per affinity tensor (vertex; edge for second order).
        for (var i = 0; i < 5; i++)
        {
            using var output = loss.call(new GraphMatchingInput(a, b));
            output.Total.backward();
            _ = loss.Match(new GraphMatchingInput(a, b));
        }

        var perStep = order == GraphMatchingOrder.Second ? 3 : 2;
        Assert.Equal(before + (5 * perStep), DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    [Fact]
    public void RejectsBadInputs()
    {
        using var scope = NewDisposeScope();
        using var loss = new GraphMatchingLoss();
        Assert.Throws<ArgumentException>(() => loss.call(new GraphMatchingInput(randn(5, 4), randn(6, 4))));
        Assert.Throws<ArgumentException>(() => loss.call(new GraphMatchingInput(randn(5), randn(5))));
        Assert.Throws<ArgumentException>(() => loss.call(new GraphMatchingInput(randn(1, 4), randn(1, 4))));
        Assert.Throws<ArgumentException>(() => loss.call(new GraphMatchingInput(randn(5, 4), randn(5, 4), randn(5, 2, 3))));
        Assert.Contains("ContrastiveWeight", Assert.Throws<ArgumentOutOfRangeException>(() => new GraphMatchingLoss(new GraphMatchingLossOptions { ContrastiveWeight = -1 })).Message, StringComparison.Ordinal);
        Assert.Contains("ContrastiveWeight", Assert.Throws<ArgumentOutOfRangeException>(() => new GraphMatchingLoss(new GraphMatchingLossOptions { ContrastiveWeight = double.NaN })).Message, StringComparison.Ordinal);
        Assert.Contains("ContrastiveTemperature", Assert.Throws<ArgumentOutOfRangeException>(() => new GraphMatchingLoss(new GraphMatchingLossOptions { ContrastiveTemperature = 0 })).Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// The experiment: a tiny MLP encoder of synthetic points whose two augmented views share 4 informative
    /// coordinates (plus small noise) and differ in 12 nuisance coordinates. At initialisation the encoder mixes in the
    /// nuisance and the solver's matching of view 1 to view 2 is poor; training with the graph-matching loss alone must
    /// make the matching clearly better on held-out batches, for every estimator and both orders.
    /// </summary>
    [Theory]
    [InlineData(MatchingGradientEstimator.BlackBox, GraphMatchingOrder.First)]
    [InlineData(MatchingGradientEstimator.BlackBox, GraphMatchingOrder.Second)]
    [InlineData(MatchingGradientEstimator.Imle, GraphMatchingOrder.First)]
    [InlineData(MatchingGradientEstimator.Imle, GraphMatchingOrder.Second)]
    public void TrainingAnEncoderWithTheLossImprovesMatchingAccuracy(MatchingGradientEstimator estimator, GraphMatchingOrder order)
    {
        using var scope = NewDisposeScope();
        random.manual_seed(11);
        set_num_threads(1);
        var encoder = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 16));
        using var loss = new GraphMatchingLoss(new GraphMatchingLossOptions
        {
            Order = order,
            Estimator = estimator,
            Neighbors = 4,
            Noise = new SumOfGammaNoiseOptions { Seed = 5 },
        });
        using var gen = new Generator(77);
        var heldOut = Enumerable.Range(0, 6).Select(_ => TwoViews(gen, 32)).ToList();
        double Accuracy()
        {
            using var noGrad = no_grad();
            var correct = 0;
            foreach (var (a, b) in heldOut)
            {
                var m = loss.Match(new GraphMatchingInput(encoder.call(a), encoder.call(b)));
                correct += m.Select((c, i) => c == i ? 1 : 0).Sum();
            }

            return correct / (32.0 * heldOut.Count);
        }

        var before = Accuracy();
        var optimizer = optim.Adam(encoder.parameters(), 3e-3);
        for (var step = 0; step < 150; step++)
        {
            using var stepScope = NewDisposeScope();
            var (a, b) = TwoViews(gen, 32);
            optimizer.zero_grad();
            using var result = loss.call(new GraphMatchingInput(encoder.call(a), encoder.call(b)));
            result.Total.backward();
            optimizer.step();
        }

        var after = Accuracy();
        output.WriteLine($"{estimator}/{order}: held-out matching accuracy {before:F3} -> {after:F3}");
        Assert.True(after >= before + 0.25 && after >= 0.6, $"{estimator}/{order}: matching accuracy {before:F3} -> {after:F3}");
    }

    private static (Tensor A, Tensor B) TwoViews(Generator gen, int n)
    {
        var signal = randn([n, 4], generator: gen);
        var a = cat([signal + (0.1 * randn([n, 4], generator: gen)), 1.5 * randn([n, 12], generator: gen)], 1);
        var b = cat([signal + (0.1 * randn([n, 4], generator: gen)), 1.5 * randn([n, 12], generator: gen)], 1);
        return (a, b);
    }

    private static double Cos(ReadOnlySpan<float> x, ReadOnlySpan<float> y)
    {
        double dot = 0, nx = 0, ny = 0;
        for (var k = 0; k < x.Length; k++)
        {
            dot += x[k] * y[k];
            nx += x[k] * x[k];
            ny += y[k] * y[k];
        }

        return dot / Math.Sqrt(nx * ny);
    }
}
