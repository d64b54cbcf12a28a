using System.Diagnostics;
using System.Globalization;
using System.Numerics.Tensors;
using MedVlp.Losses;
using MedVlp.Retrieval;

namespace MedVlp.Benchmarks;

/// <summary>
/// <c>-- retrieval</c>: exact top-10 over 100,000 x 768 float32 for 1 and 64 queries, through the memory-mapped
/// <see cref="ExactIndex"/> (float32 and float16), printed like benchmarks/reference/topk_numpy.py, with the achieved
/// matrix bytes per second next to the machine's read bandwidth (all cores summing a 1 GiB array).
/// </summary>
internal static class RetrievalSideBySide
{
    private const int Rows = 100_000, Dim = 768, K = 10;

    public static void Run(int repeat)
    {
        Console.WriteLine($"MedVlp, .NET {Environment.Version}, {Environment.ProcessorCount} processors");
        var bandwidth = ReadBandwidth();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"machine read bandwidth ({Environment.ProcessorCount} threads summing 1 GiB): {bandwidth:F1} GB/s"));
        var random = new Random(0);
        var dir = Path.Combine(Path.GetTempPath(), "medvlp-topk-bench-" + Environment.ProcessId);
        try
        {
            var vectors = new float[Dim];
            IEnumerable<CaseRecord> Records()
            {
                for (var r = 0; r < Rows; r++)
                {
                    for (var d = 0; d < Dim; d++)
                    {
                        vectors[d] = (float)random.NextDouble() - 0.5f;
                    }

                    yield return new CaseRecord { Id = r.ToString(CultureInfo.InvariantCulture), Embedding = vectors };
                }
            }

            ExactIndex.Build(Path.Combine(dir, "f32"), Records());
            random = new Random(0);
            ExactIndex.Build(Path.Combine(dir, "f16"), Records(), new ExactIndexBuildOptions { ElementType = IndexElementType.Float16 });
            foreach (var type in new[] { "f32", "f16" })
            {
                using var index = ExactIndex.Open(Path.Combine(dir, type));
                var bytes = (double)Rows * Dim * (type == "f32" ? 4 : 2);
                foreach (var queries in new[] { 1, 64 })
                {
                    var q = new float[queries * Dim];
                    for (var n = 0; n < q.Length; n++)
                    {
                        q[n] = (float)random.NextDouble() - 0.5f;
                    }

                    var t = Time(() => index.Search(q, queries, K), repeat);
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"MedVlp ExactIndex ({(type == "f32" ? "float32" : "float16")}, memory-mapped) top-{K} over {Rows} x {Dim}, {queries} quer{(queries == 1 ? "y" : "ies")}: median {t.Median:F2} ms (min {t.Min:F2}), {bytes / (t.Median / 1000) / 1e9:F1} GB/s of matrix ({bytes / (t.Min / 1000) / 1e9 / bandwidth:P0} of the machine's read bandwidth at the minimum)"));
                }
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>GB/s of all cores summing disjoint parts of a 1 GiB float array (the ceiling of a memory-bound scan).</summary>
    private static double ReadBandwidth()
    {
        var data = new float[1 << 28];
        data.AsSpan().Fill(1f);
        var threads = Environment.ProcessorCount;
        var best = double.MaxValue;
        for (var repeat = 0; repeat < 5; repeat++)
        {
            var sw = Stopwatch.StartNew();
            Parallel.For(0, threads, t =>
            {
                var part = data.Length / threads;
                GC.KeepAlive(TensorPrimitives.Sum<float>(data.AsSpan(t * part, part)));
            });
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }

        return data.Length * 4.0 / best / 1e9;
    }

    private static (double Median, double Min) Time<T>(Func<T> action, int repeat)
    {
        action();
        var times = new List<double>();
        for (var n = 0; n < repeat; n++)
        {
            var sw = Stopwatch.StartNew();
            GC.KeepAlive(action());
            times.Add(sw.Elapsed.TotalMilliseconds);
        }

        times.Sort();
        return (times[times.Count / 2], times[0]);
    }
}
