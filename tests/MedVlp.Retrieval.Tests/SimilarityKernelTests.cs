using MedVlp.Losses;

namespace MedVlp.Retrieval.Tests;

/// <summary>The blocked, multi-threaded dot-product and top-k kernels against plain double-precision loops.</summary>
public sealed class SimilarityKernelTests
{
    private static float[] Random(int count, int seed)
    {
        var random = new Random(seed);
        return [.. Enumerable.Range(0, count).Select(_ => (float)((random.NextDouble() * 2) - 1))];
    }

    private static double Dot(float[] a, int i, float[] b, int j, int d)
    {
        var sum = 0.0;
        for (var k = 0; k < d; k++)
        {
            sum += (double)a[(i * d) + k] * b[(j * d) + k];
        }

        return sum;
    }

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(7, 5, 13)]
    [InlineData(130, 67, 64)]
    [InlineData(3001, 9, 768)]
    public void DotProductsMatchDoublePrecision(int n, int m, int d)
    {
        var a = Random(n * d, 1);
        var b = Random(m * d, 2);
        var s = new float[n * m];
        Similarity.DotProducts(a, b, d, s, 0.5f);
        for (var i = 0; i < n; i++)
        {
            for (var j = 0; j < m; j++)
            {
                Assert.True(Math.Abs(s[(i * m) + j] - (0.5 * Dot(a, i, b, j, d))) < 1e-4 * Math.Sqrt(d), $"S[{i},{j}]");
            }
        }
    }

    [Fact]
    public void CosineWithPrecomputedNormsEqualsCosine()
    {
        const int D = 24;
        var a = Random(10 * D, 3);
        var b = Random(17 * D, 4);
        var normsA = new float[10];
        var normsB = new float[17];
        Similarity.RowNorms(a, D, normsA);
        Similarity.RowNorms(b, D, normsB);
        var direct = new float[170];
        var withNorms = new float[170];
        Similarity.CosineSimilarities(a, b, D, direct);
        Similarity.CosineSimilarities(a, normsA, b, normsB, D, withNorms);
        Assert.Equal(direct, withNorms);
        Assert.True(Math.Abs(direct[5] - (Dot(a, 0, b, 5, D) / normsA[0] / normsB[5])) < 1e-5);
    }

    [Theory]
    [InlineData(1000, 1, 10, 33, 1)]
    [InlineData(5000, 64, 10, 48, -1)]
    [InlineData(777, 5, 777, 16, 2)]
    [InlineData(20000, 3, 1, 768, -1)]
    public void TopKDotProductsEqualsSortingEveryScore(int rows, int queries, int k, int d, int threads)
    {
        var m = Random(rows * d, 5);
        var q = Random(queries * d, 6);
        var indices = new int[queries * k];
        var scores = new float[queries * k];
        Similarity.TopKDotProducts(m, q, d, k, indices, scores, threads);
        // Every score from the same kernel (checked against double precision above), then the plain insertion top-k.
        var all = new float[rows * queries];
        Similarity.DotProducts(m, q, d, all);
        for (var j = 0; j < queries; j++)
        {
            var column = Enumerable.Range(0, rows).Select(r => all[(r * queries) + j]).ToArray();
            var expected = Similarity.TopK(column, k);
            Assert.Equal(expected, indices.AsSpan(j * k, k).ToArray());
            for (var n = 0; n < k; n++)
            {
                Assert.Equal(column[expected[n]], scores[(j * k) + n]);
            }
        }
    }

    [Fact]
    public void TopKKeepsTiesInRowOrder()
    {
        var m = new float[] { 1, 0, 0, 1, 1, 0, 1, 0, 0, 1 };
        var indices = new int[4];
        var scores = new float[4];
        Similarity.TopKDotProducts(m, [1f, 0f], 2, 4, indices, scores);
        Assert.Equal([0, 2, 3, 1], indices);
        Assert.Equal([1f, 1f, 1f, 0f], scores);
    }

    [Fact]
    public void HalfMatrixMatchesItsFloat32Widening()
    {
        const int Rows = 3000, D = 40, K = 7;
        var m = Random(Rows * D, 8);
        var half = m.Select(v => (Half)v).ToArray();
        var widened = half.Select(v => (float)v).ToArray();
        var q = Random(2 * D, 9);
        int[] i16 = new int[2 * K], i32 = new int[2 * K];
        float[] s16 = new float[2 * K], s32 = new float[2 * K];
        Similarity.TopKDotProducts(half, q, D, K, i16, s16);
        Similarity.TopKDotProducts(widened, q, D, K, i32, s32);
        Assert.Equal(i32, i16);
        Assert.Equal(s32, s16);
    }

    [Fact]
    public void BadShapesAreRejected()
    {
        Assert.Throws<ArgumentException>(() => Similarity.TopKDotProducts(new float[10], new float[4], 4, 1, new int[1], new float[1]));
        Assert.Throws<ArgumentOutOfRangeException>(() => Similarity.TopKDotProducts(new float[8], new float[4], 4, 3, new int[3], new float[3]));
        Assert.Throws<ArgumentException>(() => Similarity.TopKDotProducts(new float[8], new float[8], 4, 2, new int[3], new float[4]));
    }
}
