using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Losses.Tests;

/// <summary>The SIMD evaluation paths against torch values (tests/golden/make_loss_golden.py) and against ClipLoss.</summary>
public sealed class SimilarityTests
{
    public static IEnumerable<object[]> Cases => Golden.Names("similarity");

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesTorch(string name)
    {
        var c = Golden.Get(name);
        var (aShape, aData) = c.InputArray("a");
        var (bShape, bData) = c.InputArray("b");
        var a = aData.Select(v => (float)v).ToArray();
        var b = bData.Select(v => (float)v).ToArray();
        int n = (int)aShape[0], m = (int)bShape[0], d = (int)aShape[1];

        var dots = new float[n * m];
        Similarity.DotProducts(a, b, d, dots);
        AssertClose(c.Output("dots").Data, dots, name + " dots");

        var cosine = new float[n * m];
        Similarity.CosineSimilarities(a, b, d, cosine);
        AssertClose(c.Output("cosine").Data, cosine, name + " cosine");

        var probabilities = new float[n * m];
        Similarity.SoftmaxRows(cosine, m, probabilities, (float)c.Param("logit_scale"));
        AssertClose(c.Output("softmax").Data, probabilities, name + " softmax");

        var k = (int)c.Param("k");
        var top = new int[n * k];
        Similarity.TopKRows(cosine, m, k, top);
        Assert.Equal(c.Output("topk").Data.Select(v => (int)v).ToArray(), top);

        if (n == m)
        {
            var an = (float[])a.Clone();
            var bn = (float[])b.Clone();
            Similarity.NormalizeRows(an, d);
            Similarity.NormalizeRows(bn, d);
            var expected = c.Output("infonce").Data;
            Golden.AssertClose(expected[0], Similarity.InfoNce(an, bn, d, (float)c.Param("logit_scale")), name + " InfoNCE");
            Golden.AssertClose(expected[1], Similarity.InfoNce(an, bn, d, (float)c.Param("logit_scale"), 0.1), name + " InfoNCE ls 0.1");
        }
    }

    [Fact]
    public void InfoNceEqualsClipLossInFloat32()
    {
        using var scope = NewDisposeScope();
        random.manual_seed(9);
        var image = nn.functional.normalize(randn(48, 32), dim: -1);
        var text = nn.functional.normalize(randn(48, 32), dim: -1);
        using var loss = new ClipLoss(new ClipLossOptions { LabelSmoothing = 0.05 });
        using var output = loss.call(new ContrastiveInput(image, text, tensor(30f)));
        var value = Similarity.InfoNce(image.data<float>().ToArray(), text.data<float>().ToArray(), 32, 30f, 0.05);
        Assert.Equal(output.Total.ToDouble(), value, 1e-4);
    }

    [Fact]
    public void TopKBreaksTiesByIndexAndPutsNaNLast()
    {
        float[] scores = [0.5f, float.NaN, 0.9f, 0.5f, 0.9f, -1f];
        Assert.Equal([2, 4, 0, 3], Similarity.TopK(scores, 4));
        Assert.Equal([2, 4, 0, 3, 5, 1], Similarity.TopK(scores, 6));
        Assert.Empty(Similarity.TopK(scores, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => Similarity.TopK(scores, 7));
    }

    [Fact]
    public void BadShapesAreRejected()
    {
        Assert.Throws<ArgumentException>(() => Similarity.DotProducts(new float[10], new float[8], 4, new float[10]));
        Assert.Throws<ArgumentException>(() => Similarity.DotProducts(new float[8], new float[8], 4, new float[3]));
        Assert.Throws<ArgumentException>(() => Similarity.InfoNce(new float[8], new float[12], 4, 10f));
    }

    private static void AssertClose(double[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        var scale = expected.Max(Math.Abs);
        for (var i = 0; i < expected.Length; i++)
        {
            // float32 arithmetic against a float64 reference: 1e-5 relative to the entry, floored at 1e-5 of the matrix's scale.
            var tolerance = 1e-5 * (Math.Abs(expected[i]) + (scale * 1e-1));
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tolerance, $"{what}[{i}]: expected {expected[i]:R}, got {actual[i]:R}");
        }
    }
}
