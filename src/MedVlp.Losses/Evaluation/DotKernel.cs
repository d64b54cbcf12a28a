using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace MedVlp.Losses;

/// <summary>
/// The register-blocked dot-product kernel behind <see cref="Similarity"/>: a block of rows against a set of queries,
/// four rows by four queries at a time with sixteen FMA accumulators, so every row value loaded from memory serves four
/// queries and every query value four rows (a matrix product in dot-product form, like a GEMM micro-kernel). Queries left
/// over (all of them for a single query, the memory-bound case) go through a four-row kernel with 512-bit accumulators
/// where the CPU has AVX-512. Rows are float32 or float16; float16 rows are widened in registers (exactly: every half is a
/// float), so a half matrix is read from memory once at half the bytes and scores equal those of its float32 widening.
/// </summary>
internal static unsafe class DotKernel
{
    /// <summary>scores[r * queryCount + q] = &lt;rows[r], queries[q]&gt;, rows of <typeparamref name="T"/> (float or Half).</summary>
    public static void Block<T>(T* rows, int rowCount, float* queries, int queryCount, int dimension, float* scores)
        where T : unmanaged
    {
        if (typeof(T) != typeof(float) && typeof(T) != typeof(Half))
        {
            throw new NotSupportedException($"Rows of {typeof(T)} are not supported; use float or Half.");
        }

        var r = 0;
        if (Fma.IsSupported && Avx2.IsSupported && dimension >= 8)
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

        if (r == rowCount)
        {
            return;
        }

        var widened = typeof(T) == typeof(float) ? null : new float[dimension];
        for (; r < rowCount; r++)
        {
            ReadOnlySpan<float> row;
            if (widened is null)
            {
                row = new ReadOnlySpan<float>((float*)rows + ((long)r * dimension), dimension);
            }
            else
            {
                TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>((Half*)rows + ((long)r * dimension), dimension), widened);
                row = widened;
            }

            for (var q = 0; q < queryCount; q++)
            {
                scores[((long)r * queryCount) + q] = TensorPrimitives.Dot(row, new ReadOnlySpan<float>(queries + ((long)q * dimension), dimension));
            }
        }
    }

    /// <summary>
    /// scores[r * queryCount + q] = &lt;rows[r], queries[q]&gt; for half rows against a few queries (fewer than four), the
    /// memory-bound case: with AVX-512 the halves are not converted but reinterpreted. A half's magnitude bits shifted
    /// into float position are, as a float, exactly the half times 2^-112 (normal and subnormal alike), so against the
    /// query times 2^112 (<paramref name="scaledQueries"/>, exact while |q| &lt; 2^16) every FMA gets the exact product
    /// of the half and the query. Each row is one sequential stream into four accumulators (what reads a half matrix
    /// fastest here), so scores can differ from the float32 kernel's in the last bits. A row holding an infinity or NaN,
    /// which this reading would make finite, is computed again with full widening.
    /// </summary>
    /// <param name="rows">The half rows.</param>
    /// <param name="rowCount">The number of rows.</param>
    /// <param name="queries">The queries.</param>
    /// <param name="scaledQueries">The queries times 2^112, or null when a query value is not below 2^16 in magnitude
    /// (then every row is widened).</param>
    /// <param name="queryCount">The number of queries (below four).</param>
    /// <param name="dimension">The row length.</param>
    /// <param name="scores">Receives rowCount x queryCount scores.</param>
    public static void BlockHalf(Half* rows, int rowCount, float* queries, float* scaledQueries, int queryCount, int dimension, float* scores)
    {
        if (scaledQueries is null || !Avx512F.IsSupported || dimension < 16 || queryCount >= 4)
        {
            Block(rows, rowCount, queries, queryCount, dimension, scores);
            return;
        }

        for (var r = 0; r < rowCount; r++)
        {
            var row = rows + ((long)r * dimension);
            for (var q = 0; q < queryCount; q++)
            {
                var offset = (long)q * dimension;
                if (!Kernel1Scaled(row, queries + offset, scaledQueries + offset, dimension, out scores[((long)r * queryCount) + q]))
                {
                    Block(row, 1, queries + offset, 1, dimension, scores + ((long)r * queryCount) + q);
                }
            }
        }
    }

    /// <summary>One half row against one scaled query (see <see cref="BlockHalf"/>); false when the row holds an
    /// infinity or NaN.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static bool Kernel1Scaled(Half* row, float* query, float* scaled, int d, out float score)
    {
        var r = (ushort*)row;
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        var largest = Vector256<ushort>.Zero;
        var k = 0;
        for (; k + 64 <= d; k += 64)
        {
            Vector256<ushort> h0 = Vector256.Load(r + k), h1 = Vector256.Load(r + k + 16), h2 = Vector256.Load(r + k + 32), h3 = Vector256.Load(r + k + 48);
            a0 = Avx512F.FusedMultiplyAdd(Reinterpret(h0), Vector512.Load(scaled + k), a0);
            a1 = Avx512F.FusedMultiplyAdd(Reinterpret(h1), Vector512.Load(scaled + k + 16), a1);
            a2 = Avx512F.FusedMultiplyAdd(Reinterpret(h2), Vector512.Load(scaled + k + 32), a2);
            a3 = Avx512F.FusedMultiplyAdd(Reinterpret(h3), Vector512.Load(scaled + k + 48), a3);
            largest = Vector256.Max(Vector256.Max(largest, Vector256.Max(h0 & HalfMagnitude, h1 & HalfMagnitude)), Vector256.Max(h2 & HalfMagnitude, h3 & HalfMagnitude));
        }

        for (; k + 16 <= d; k += 16)
        {
            var h = Vector256.Load(r + k);
            a0 = Avx512F.FusedMultiplyAdd(Reinterpret(h), Vector512.Load(scaled + k), a0);
            largest = Vector256.Max(largest, h & HalfMagnitude);
        }

        score = 0;
        if (Vector256.GreaterThanOrEqualAny(largest, Vector256.Create((ushort)0x7c00)))
        {
            return false;
        }

        var sum = Vector512.Sum((a0 + a1) + (a2 + a3));
        for (; k < d; k++)
        {
            sum += Load(row + k) * query[k];
        }

        score = sum;
        return true;
    }

    private static Vector256<ushort> HalfMagnitude => Vector256.Create((ushort)0x7fff);

    /// <summary>Sixteen halves as the floats half * 2^-112: sign-extend to 32 bits, shift the exponent and mantissa into
    /// float position (the sign lands on bit 31 with copies on bits 28-30), clear the copies.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> Reinterpret(Vector256<ushort> h)
        => (Avx512F.ConvertToVector512Int32(h.AsInt16()) << 13).AsSingle() & Vector512.Create(0x8fffffffu).AsSingle();

    /// <summary>2^112, the factor that <see cref="BlockHalf"/>'s scaled queries carry.</summary>
    public const float HalfScale = HalfRebias;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel4x4<T>(T* r0, float* q0, int d, float* target, int stride)
        where T : unmanaged
    {
        T* r1 = r0 + d, r2 = r1 + d, r3 = r2 + d;
        float* q1 = q0 + d, q2 = q1 + d, q3 = q2 + d;
        Vector256<float> a00 = default, a01 = default, a02 = default, a03 = default;
        Vector256<float> a10 = default, a11 = default, a12 = default, a13 = default;
        Vector256<float> a20 = default, a21 = default, a22 = default, a23 = default;
        Vector256<float> a30 = default, a31 = default, a32 = default, a33 = default;
        var k = 0;
        for (; k + 8 <= d; k += 8)
        {
            var x0 = Load256(r0 + k);
            var x1 = Load256(r1 + k);
            var x2 = Load256(r2 + k);
            var x3 = Load256(r3 + k);
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
            float x0 = Load(r0 + k), x1 = Load(r1 + k), x2 = Load(r2 + k), x3 = Load(r3 + k), y0 = q0[k], y1 = q1[k], y2 = q2[k], y3 = q3[k];
            target[0] += x0 * y0; target[1] += x0 * y1; target[2] += x0 * y2; target[3] += x0 * y3;
            target[stride] += x1 * y0; target[stride + 1] += x1 * y1; target[stride + 2] += x1 * y2; target[stride + 3] += x1 * y3;
            var t2 = target + (2 * stride);
            t2[0] += x2 * y0; t2[1] += x2 * y1; t2[2] += x2 * y2; t2[3] += x2 * y3;
            var t3 = target + (3 * stride);
            t3[0] += x3 * y0; t3[1] += x3 * y1; t3[2] += x3 * y2; t3[3] += x3 * y3;
        }
    }

    /// <summary>Four rows against one query: the memory-bound case, so as wide as the CPU allows (a 512-bit load is a
    /// whole cache line of float32 rows) with one accumulator per row.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel4x1<T>(T* r0, float* q0, int d, float* target, int stride)
        where T : unmanaged
    {
        T* r1 = r0 + d, r2 = r1 + d, r3 = r2 + d;
        float s0, s1, s2, s3;
        var k = 0;
        if (Avx512F.IsSupported && d >= 16)
        {
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; k + 16 <= d; k += 16)
            {
                var y = Vector512.Load(q0 + k);
                a0 = Avx512F.FusedMultiplyAdd(Load512(r0 + k), y, a0);
                a1 = Avx512F.FusedMultiplyAdd(Load512(r1 + k), y, a1);
                a2 = Avx512F.FusedMultiplyAdd(Load512(r2 + k), y, a2);
                a3 = Avx512F.FusedMultiplyAdd(Load512(r3 + k), y, a3);
            }

            (s0, s1, s2, s3) = (Vector512.Sum(a0), Vector512.Sum(a1), Vector512.Sum(a2), Vector512.Sum(a3));
        }
        else
        {
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; k + 8 <= d; k += 8)
            {
                var y = Avx.LoadVector256(q0 + k);
                a0 = Fma.MultiplyAdd(Load256(r0 + k), y, a0);
                a1 = Fma.MultiplyAdd(Load256(r1 + k), y, a1);
                a2 = Fma.MultiplyAdd(Load256(r2 + k), y, a2);
                a3 = Fma.MultiplyAdd(Load256(r3 + k), y, a3);
            }

            (s0, s1, s2, s3) = (Vector256.Sum(a0), Vector256.Sum(a1), Vector256.Sum(a2), Vector256.Sum(a3));
        }

        for (; k < d; k++)
        {
            var y = q0[k];
            s0 += Load(r0 + k) * y;
            s1 += Load(r1 + k) * y;
            s2 += Load(r2 + k) * y;
            s3 += Load(r3 + k) * y;
        }

        target[0] = s0;
        target[stride] = s1;
        target[2 * stride] = s2;
        target[3 * stride] = s3;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Load<T>(T* p)
        where T : unmanaged => typeof(T) == typeof(float) ? *(float*)p : (float)*(Half*)p;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Load256<T>(T* p)
        where T : unmanaged => typeof(T) == typeof(float) ? Avx.LoadVector256((float*)p)
            : Widen(Avx2.ConvertToVector256Int32(Sse2.LoadVector128((ushort*)p)).AsUInt32());

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Load512<T>(T* p)
        where T : unmanaged => typeof(T) == typeof(float) ? Vector512.Load((float*)p)
            : Widen(Avx512F.ConvertToVector512UInt32(Vector256.Load((ushort*)p)));

    /// <summary>IEEE half bits (zero-extended to 32 bits) to float, exactly: the magnitude shifted into float position
    /// times 2^112 rebiases the exponent of normal and subnormal halves alike; infinities and NaNs get exponent 255.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> Widen(Vector512<uint> h)
    {
        var sign = (h & Vector512.Create(0x8000u)) << 16;
        var magnitude = (h & Vector512.Create(0x7fffu)) << 13;
        var scaled = (magnitude.AsSingle() * Vector512.Create(HalfRebias)).AsUInt32();
        var special = Vector512.GreaterThanOrEqual(magnitude, Vector512.Create(HalfInfinity));
        return (Vector512.ConditionalSelect(special, magnitude + Vector512.Create(0x70000000u), scaled) | sign).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> Widen(Vector256<uint> h)
    {
        var sign = (h & Vector256.Create(0x8000u)) << 16;
        var magnitude = (h & Vector256.Create(0x7fffu)) << 13;
        var scaled = (magnitude.AsSingle() * Vector256.Create(HalfRebias)).AsUInt32();
        var special = Vector256.GreaterThanOrEqual(magnitude, Vector256.Create(HalfInfinity));
        return (Vector256.ConditionalSelect(special, magnitude + Vector256.Create(0x70000000u), scaled) | sign).AsSingle();
    }

    /// <summary>2^112 = 2^(127 - 15), the difference of the float and half exponent biases.</summary>
    private const float HalfRebias = 5.192296858534828e33f;

    /// <summary>0x7c00 (the half exponent of infinity and NaN) shifted into float position.</summary>
    private const uint HalfInfinity = 0x7c00u << 13;

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
