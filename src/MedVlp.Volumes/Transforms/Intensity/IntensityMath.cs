using System.Numerics.Tensors;

namespace MedVlp.Volumes.Transforms;

/// <summary>Shared SIMD kernels of the intensity transforms (parallel over large blocks).</summary>
internal static class IntensityMath
{
    private const int Block = 1 << 18;

    /// <summary><c>dst = src * scale + offset</c>.</summary>
    public static void Affine(float[] src, float[] dst, double scale, double offset)
    {
        float s = (float)scale, o = (float)offset;
        ForBlocks(src.Length, (start, length) =>
        {
            var d = dst.AsSpan(start, length);
            TensorPrimitives.Multiply(src.AsSpan(start, length), s, d);
            TensorPrimitives.Add(d, o, d);
        });
    }

    /// <summary><c>dst = clamp(src, lo, hi)</c>.</summary>
    public static void Clamp(float[] src, float[] dst, float lo, float hi) =>
        ForBlocks(src.Length, (start, length) =>
        {
            var d = dst.AsSpan(start, length);
            TensorPrimitives.Max(src.AsSpan(start, length), lo, d);
            TensorPrimitives.Min(d, hi, d);
        });

    /// <summary>Runs <paramref name="body"/> over consecutive blocks of <paramref name="length"/> elements, in parallel when large.</summary>
    public static void ForBlocks(int length, Action<int, int> body)
    {
        var blocks = (length + Block - 1) / Block;
        if (blocks <= 1)
        {
            body(0, length);
            return;
        }

        Parallel.For(0, blocks, b =>
        {
            var start = b * Block;
            body(start, Math.Min(Block, length - start));
        });
    }

    /// <summary>Sum and sum of squares (double precision, block-wise) of the values, optionally only where they are non-zero.</summary>
    public static (double Sum, double SumSquares, long Count) Moments(float[] values, bool nonzeroOnly)
    {
        var gate = new object();
        double sum = 0, squares = 0;
        long count = 0;
        ForBlocks(values.Length, (start, length) =>
        {
            double s = 0, q = 0;
            long c = 0;
            foreach (var v in values.AsSpan(start, length))
            {
                if (nonzeroOnly && v == 0)
                {
                    continue;
                }

                s += v;
                q += (double)v * v;
                c++;
            }

            lock (gate)
            {
                sum += s;
                squares += q;
                count += c;
            }
        });

        return (sum, squares, count);
    }
}
