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

    [Theory]
    [InlineData(1, 40)]
    [InlineData(2, 40)]
    [InlineData(3, 768)]
    [InlineData(1, 77)]
    [InlineData(5, 40)]
    public void HalfMatrixMatchesItsFloat32Widening(int queries, int d)
    {
        const int Rows = 3000, K = 7;
        var m = Random(Rows * d, 8);
        var half = m.Select(v => (Half)v).ToArray();
        var widened = half.Select(v => (float)v).ToArray();
        var q = Random(queries * d, 9);
        int[] i16 = new int[queries * K], i32 = new int[queries * K];
        float[] s16 = new float[queries * K], s32 = new float[queries * K];
        Similarity.TopKDotProducts(half, q, d, K, i16, s16);
        Similarity.TopKDotProducts(widened, q, d, K, i32, s32);
        Assert.Equal(i32, i16);
        if (queries >= 4)
        {
            // Four or more queries: blocks are widened once and scored by the float32 kernel, bit for bit.
            Assert.Equal(s32, s16);
        }
        else
        {
            // Fewer: the half kernel reads each row as one stream (another summation order), so the last bits may differ.
            for (var n = 0; n < s32.Length; n++)
            {
                var exact = Dot(widened, i16[n], q, n / K, d);
                Assert.True(Math.Abs(s16[n] - exact) < 1e-5 && Math.Abs(s32[n] - exact) < 1e-5, $"score {n}: half {s16[n]}, float {s32[n]}, exact {exact}");
            }
        }
    }

    [Fact]
    public void EveryFiniteHalfIsReadExactly()
    {
        // All 63,488 finite halves (normal, subnormal, zeros of both signs) as 3,968 rows of 16; a one-hot query picks one
        // column, so each score must be exactly that half as a float, whichever reading the CPU's kernel uses.
        var finite = Enumerable.Range(0, 65536).Select(b => BitConverter.UInt16BitsToHalf((ushort)b)).Where(Half.IsFinite).ToArray();
        const int D = 16;
        var rows = finite.Length / D;
        for (var column = 0; column < D; column++)
        {
            var q = new float[D];
            q[column] = 1f;
            var indices = new int[rows];
            var scores = new float[rows];
            Similarity.TopKDotProducts(finite, q, D, rows, indices, scores, 1);
            for (var n = 0; n < rows; n++)
            {
                var expected = (float)finite[(indices[n] * D) + column];
                Assert.True(expected == scores[n] && float.IsNegative(expected) == float.IsNegative(scores[n]) || expected == 0 && scores[n] == 0,
                    $"row {indices[n]}, column {column}: {scores[n]} instead of {expected}");
            }
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    public void HalfRowsWithInfinityOrNaNScoreAsWidened(int queries)
    {
        // A half matrix from another tool may hold infinities, NaNs and subnormals; the search must see them as the
        // widened floats do (infinity stays infinite, NaN ranks last), not as large finite numbers.
        const int Rows = 40, D = 48, K = 40;
        var m = Random(Rows * D, 10).Select(v => (Half)v).ToArray();
        m[(3 * D) + 5] = Half.PositiveInfinity;
        m[(7 * D) + 40] = Half.NegativeInfinity;
        m[(11 * D) + 17] = Half.NaN;
        m[(13 * D) + 2] = BitConverter.UInt16BitsToHalf(0x0001); // the smallest subnormal
        m[(17 * D) + 63 - D] = BitConverter.UInt16BitsToHalf(0x83ff); // the largest negative subnormal
        m[(19 * D) + 9] = Half.MaxValue;
        var q = Enumerable.Repeat(0.5f, queries * D).ToArray();
        var indices = new int[queries * K];
        var scores = new float[queries * K];
        Similarity.TopKDotProducts(m, q, D, K, indices, scores);
        var widened = m.Select(v => (float)v).ToArray();
        var expectedIndices = new int[queries * K];
        var expectedScores = new float[queries * K];
        Similarity.TopKDotProducts(widened, q, D, K, expectedIndices, expectedScores);
        Assert.Equal(3, indices[0]);
        Assert.Equal(float.PositiveInfinity, scores[0]);
        Assert.Equal(11, indices[K - 1]);
        Assert.True(float.IsNaN(scores[K - 1]));
        Assert.Equal(7, indices[K - 2]);
        Assert.Equal(float.NegativeInfinity, scores[K - 2]);
        Assert.Equal(expectedIndices, indices);
        for (var n = 0; n < scores.Length; n++)
        {
            Assert.True(scores[n].Equals(expectedScores[n]) || Math.Abs(scores[n] - expectedScores[n]) < 1e-3, $"score {n}: {scores[n]} vs {expectedScores[n]}");
        }
    }

    [Fact]
    public void BadShapesAreRejected()
    {
        Assert.Throws<ArgumentException>(() => Similarity.TopKDotProducts(new float[10], new float[4], 4, 1, new int[1], new float[1]));
        Assert.Throws<ArgumentOutOfRangeException>(() => Similarity.TopKDotProducts(new float[8], new float[4], 4, 3, new int[3], new float[3]));
        Assert.Throws<ArgumentException>(() => Similarity.TopKDotProducts(new float[8], new float[8], 4, 2, new int[3], new float[4]));
    }
}
