using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace MedVlp.Losses;

/// <summary>
/// The register-blocked dot-product kernel behind <see cref="Similarity"/>: a block of rows against a set of queries,
/// four rows by four queries at a time with sixteen FMA accumulators, so every row value loaded from memory serves four
/// queries and every query value four rows (a matrix product in dot-product form, like a GEMM micro-kernel).
/// </summary>
internal static unsafe class DotKernel
{
    /// <summary>scores[r * queryCount + q] = &lt;rows[r], queries[q]&gt;.</summary>
    public static void Block(float* rows, int rowCount, float* queries, int queryCount, int dimension, float* scores)
    {
        var r = 0;
        if (Fma.IsSupported && dimension >= 8)
        {
            for (; r + 4 <= rowCount; r += 4)
            {
                var row = rows + ((long)r * dimension);
                var target = scores + ((long)r * queryCount);
                var q = 0;
                for (; q + 4 <= queryCount; q += 4)
                {
                    Kernel4x4(row, queries + ((long)q * dimension), dimension, target + q, queryCount);
                }

                for (; q < queryCount; q++)
                {
                    Kernel4x1(row, queries + ((long)q * dimension), dimension, target + q, queryCount);
                }
            }
        }

        for (; r < rowCount; r++)
        {
            var row = new ReadOnlySpan<float>(rows + ((long)r * dimension), dimension);
            for (var q = 0; q < queryCount; q++)
            {
                scores[((long)r * queryCount) + q] = TensorPrimitives.Dot(row, new ReadOnlySpan<float>(queries + ((long)q * dimension), dimension));
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel4x4(float* r0, float* q0, int d, float* target, int stride)
    {
        float* r1 = r0 + d, r2 = r1 + d, r3 = r2 + d;
        float* q1 = q0 + d, q2 = q1 + d, q3 = q2 + d;
        Vector256<float> a00 = default, a01 = default, a02 = default, a03 = default;
        Vector256<float> a10 = default, a11 = default, a12 = default, a13 = default;
        Vector256<float> a20 = default, a21 = default, a22 = default, a23 = default;
        Vector256<float> a30 = default, a31 = default, a32 = default, a33 = default;
        var k = 0;
        for (; k + 8 <= d; k += 8)
        {
            var x0 = Avx.LoadVector256(r0 + k);
            var x1 = Avx.LoadVector256(r1 + k);
            var x2 = Avx.LoadVector256(r2 + k);
            var x3 = Avx.LoadVector256(r3 + k);
            var y = Avx.LoadVector256(q0 + k);
            a00 = Fma.MultiplyAdd(x0, y, a00);
            a10 = Fma.MultiplyAdd(x1, y, a10);
            a20 = Fma.MultiplyAdd(x2, y, a20);
            a30 = Fma.MultiplyAdd(x3, y, a30);
            y = Avx.LoadVector256(q1 + k);
            a01 = Fma.MultiplyAdd(x0, y, a01);
            a11 = Fma.MultiplyAdd(x1, y, a11);
            a21 = Fma.MultiplyAdd(x2, y, a21);
            a31 = Fma.MultiplyAdd(x3, y, a31);
            y = Avx.LoadVector256(q2 + k);
            a02 = Fma.MultiplyAdd(x0, y, a02);
            a12 = Fma.MultiplyAdd(x1, y, a12);
            a22 = Fma.MultiplyAdd(x2, y, a22);
            a32 = Fma.MultiplyAdd(x3, y, a32);
            y = Avx.LoadVector256(q3 + k);
            a03 = Fma.MultiplyAdd(x0, y, a03);
            a13 = Fma.MultiplyAdd(x1, y, a13);
            a23 = Fma.MultiplyAdd(x2, y, a23);
            a33 = Fma.MultiplyAdd(x3, y, a33);
        }

        Store(target, Vector256.Sum(a00), Vector256.Sum(a01), Vector256.Sum(a02), Vector256.Sum(a03));
        Store(target + stride, Vector256.Sum(a10), Vector256.Sum(a11), Vector256.Sum(a12), Vector256.Sum(a13));
        Store(target + (2 * stride), Vector256.Sum(a20), Vector256.Sum(a21), Vector256.Sum(a22), Vector256.Sum(a23));
        Store(target + (3 * stride), Vector256.Sum(a30), Vector256.Sum(a31), Vector256.Sum(a32), Vector256.Sum(a33));
        for (; k < d; k++)
        {
            float x0 = r0[k], x1 = r1[k], x2 = r2[k], x3 = r3[k], y0 = q0[k], y1 = q1[k], y2 = q2[k], y3 = q3[k];
            target[0] += x0 * y0; target[1] += x0 * y1; target[2] += x0 * y2; target[3] += x0 * y3;
            target[stride] += x1 * y0; target[stride + 1] += x1 * y1; target[stride + 2] += x1 * y2; target[stride + 3] += x1 * y3;
            var t2 = target + (2 * stride);
            t2[0] += x2 * y0; t2[1] += x2 * y1; t2[2] += x2 * y2; t2[3] += x2 * y3;
            var t3 = target + (3 * stride);
            t3[0] += x3 * y0; t3[1] += x3 * y1; t3[2] += x3 * y2; t3[3] += x3 * y3;
        }

    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel4x1(float* r0, float* q0, int d, float* target, int stride)
    {
        float* r1 = r0 + d, r2 = r1 + d, r3 = r2 + d;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        var k = 0;
        for (; k + 8 <= d; k += 8)
        {
            var y = Avx.LoadVector256(q0 + k);
            a0 = Fma.MultiplyAdd(Avx.LoadVector256(r0 + k), y, a0);
            a1 = Fma.MultiplyAdd(Avx.LoadVector256(r1 + k), y, a1);
            a2 = Fma.MultiplyAdd(Avx.LoadVector256(r2 + k), y, a2);
            a3 = Fma.MultiplyAdd(Avx.LoadVector256(r3 + k), y, a3);
        }

        float s0 = Vector256.Sum(a0), s1 = Vector256.Sum(a1), s2 = Vector256.Sum(a2), s3 = Vector256.Sum(a3);
        for (; k < d; k++)
        {
            var y = q0[k];
            s0 += r0[k] * y;
            s1 += r1[k] * y;
            s2 += r2[k] * y;
            s3 += r3[k] * y;
        }

        target[0] = s0;
        target[stride] = s1;
        target[2 * stride] = s2;
        target[3 * stride] = s3;
    }

    private static void Store(float* target, float s0, float s1, float s2, float s3)
    {
        target[0] = s0;
        target[1] = s1;
        target[2] = s2;
        target[3] = s3;
    }
}

/// <summary>A bounded min-heap of the best <c>k</c> (score, index) pairs seen so far; the worst kept pair is on top.</summary>
internal struct TopKHeap
{
    private readonly float[] _scores;
    private readonly long[] _indices;
    private readonly int _offset;
    private readonly int _k;

    public TopKHeap(float[] scores, long[] indices, int offset, int k)
    {
        _scores = scores;
        _indices = indices;
        _offset = offset;
        _k = k;
        Count = 0;
    }

    public int Count { get; private set; }

    /// <summary>The score a candidate must beat once the heap is full (-infinity before).</summary>
    public readonly float Threshold => Count < _k ? float.NegativeInfinity : _scores[_offset];

    /// <summary>True when (score, index) ranks before (otherScore, otherIndex): larger score, then lower index; NaN last.</summary>
    public static bool Better(float score, long index, float otherScore, long otherIndex)
    {
        if (float.IsNaN(score))
        {
            return float.IsNaN(otherScore) && index < otherIndex;
        }

        return float.IsNaN(otherScore) || score > otherScore || (score == otherScore && index < otherIndex);
    }

    public void Push(float score, long index)
    {
        if (Count < _k)
        {
            var i = Count++;
            _scores[_offset + i] = score;
            _indices[_offset + i] = index;
            SiftUp(i);
        }
        else if (Better(score, index, _scores[_offset], _indices[_offset]))
        {
            _scores[_offset] = score;
            _indices[_offset] = index;
            SiftDown(0);
        }
    }

    /// <summary>Writes the kept pairs best first into the destinations and empties the heap.</summary>
    public void Drain(Span<float> scores, Span<long> indices)
    {
        for (var n = Count - 1; n >= 0; n--)
        {
            scores[n] = _scores[_offset];
            indices[n] = _indices[_offset];
            Count--;
            _scores[_offset] = _scores[_offset + Count];
            _indices[_offset] = _indices[_offset + Count];
            SiftDown(0);
        }
    }

    private readonly void SiftUp(int i)
    {
        while (i > 0)
        {
            var parent = (i - 1) / 2;
            if (!Better(_scores[_offset + parent], _indices[_offset + parent], _scores[_offset + i], _indices[_offset + i]))
            {
                break;
            }

            Swap(i, parent);
            i = parent;
        }
    }

    private readonly void SiftDown(int i)
    {
        while (true)
        {
            int left = (2 * i) + 1, right = left + 1, worst = i;
            if (left < Count && Better(_scores[_offset + worst], _indices[_offset + worst], _scores[_offset + left], _indices[_offset + left]))
            {
                worst = left;
            }

            if (right < Count && Better(_scores[_offset + worst], _indices[_offset + worst], _scores[_offset + right], _indices[_offset + right]))
            {
                worst = right;
            }

            if (worst == i)
            {
                return;
            }

            Swap(i, worst);
            i = worst;
        }
    }

    private readonly void Swap(int a, int b)
    {
        (_scores[_offset + a], _scores[_offset + b]) = (_scores[_offset + b], _scores[_offset + a]);
        (_indices[_offset + a], _indices[_offset + b]) = (_indices[_offset + b], _indices[_offset + a]);
    }
}
