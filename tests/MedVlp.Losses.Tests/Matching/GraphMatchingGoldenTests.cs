using System.Text.Json;
using MedVlp.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Losses.Tests.Matching;

/// <summary>GraphMatchingLoss (first order, black-box, with and without the contrastive term) value and gradients against the
/// PyTorch reference in tests/golden/make_graph_matching_golden.py.</summary>
public sealed class GraphMatchingGoldenTests
{
    [Fact]
    public void ValueAndGradientsEqualThePyTorchReference()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(TestData.Golden("graph_matching_golden.json")));
        int count = 0, contrastive = 0;
        foreach (var c in doc.RootElement.EnumerateArray())
        {
            using var scope = NewDisposeScope();
            var n = c.GetProperty("n").GetInt32();
            var d = c.GetProperty("d").GetInt32();
            var v1 = tensor(Floats(c, "view1"), [n, d]).requires_grad_();
            var v2 = tensor(Floats(c, "view2"), [n, d]).requires_grad_();
            Tensor? l1 = null, l2 = null;
            if (c.TryGetProperty("local1", out _))
            {
                l1 = tensor(Floats(c, "local1"), Shape(c, "local_shape1")).requires_grad_();
                l2 = tensor(Floats(c, "local2"), Shape(c, "local_shape2")).requires_grad_();
            }

            using var loss = new GraphMatchingLoss(new GraphMatchingLossOptions
            {
                Order = GraphMatchingOrder.First,
                Lambda = c.GetProperty("lambda").GetDouble(),
                LocalWeight = c.GetProperty("local_weight").GetDouble(),
                ContrastiveWeight = c.GetProperty("contrastive_weight").GetDouble(),
                ContrastiveTemperature = c.GetProperty("contrastive_temperature").GetDouble(),
            });
            var input = new GraphMatchingInput(v1, v2, l1, l2);
            Assert.Equal(c.GetProperty("assignment").EnumerateArray().Select(x => x.GetInt32()).ToArray(), loss.Match(input));
            using var output = loss.call(input);
            Assert.Equal(c.GetProperty("loss").GetDouble(), output.Total.item<float>(), 6);
            Assert.Equal(c.GetProperty("hamming").GetDouble(), output.Terms["hamming"].item<float>(), 6);
            if (c.GetProperty("contrastive_weight").GetDouble() > 0)
            {
                contrastive++;
                Assert.Equal(c.GetProperty("contrastive").GetDouble(), output.Terms["contrastive"].item<float>(), 6);
            }
            else
            {
                Assert.False(output.Terms.ContainsKey("contrastive"));
            }

            output.Total.backward();
            AssertClose(Floats(c, "grad_view1"), v1.grad!);
            AssertClose(Floats(c, "grad_view2"), v2.grad!);
            if (l1 is not null)
            {
                AssertClose(Floats(c, "grad_local1"), l1.grad!);
                AssertClose(Floats(c, "grad_local2"), l2!.grad!);
            }

            Assert.Contains(v1.grad!.data<float>().ToArray(), x => Math.Abs(x) > 1e-4);
            count++;
        }

        Assert.Equal(6, count);
        Assert.Equal(2, contrastive);
    }

    private static void AssertClose(float[] expected, Tensor actual)
    {
        var a = actual.data<float>().ToArray();
        Assert.Equal(expected.Length, a.Length);
        for (var k = 0; k < a.Length; k++)
        {
            Assert.True(Math.Abs(expected[k] - a[k]) <= 1e-6 + (1e-5 * Math.Abs(expected[k])), $"entry {k}: PyTorch {expected[k]} vs {a[k]}");
        }
    }

    private static float[] Floats(JsonElement c, string name) => c.GetProperty(name).EnumerateArray().Select(x => x.GetSingle()).ToArray();

    private static long[] Shape(JsonElement c, string name) => c.GetProperty(name).EnumerateArray().Select(x => x.GetInt64()).ToArray();
}
