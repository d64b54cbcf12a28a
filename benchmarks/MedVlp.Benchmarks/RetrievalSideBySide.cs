using System.Diagnostics;
using System.Globalization;
using System.IO.MemoryMappedFiles;
using System.Runtime.Intrinsics;
using System.Text.Json;
using MedVlp.Retrieval;

namespace MedVlp.Benchmarks;

/// <summary>
/// <c>-- retrieval [REPEAT] [TIMES.jsonl]</c>: exact top-10 over 100,000 x 768 for 1 and 64 queries, through the
/// memory-mapped <see cref="ExactIndex"/> (float32 and float16), printed like benchmarks/reference/topk_numpy.py, with the
/// achieved matrix bytes per second next to the machine's read bandwidth measured on the same mapped file in the same
/// run (a plain SIMD sum over it, chunked over all cores the way the search is). With a times file, every timing is
/// appended to it as a JSON line (benchmarks/reference/topk_summary.py pools them with numpy's).
/// </summary>
internal static class RetrievalSideBySide
{
    private const int Rows = 100_000, Dim = 768, K = 10;

    public static void Run(int repeat, string? timesFile = null)
    {
        Console.WriteLine($"MedVlp, .NET {Environment.Version}, {Environment.ProcessorCount} processors");
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
            var queriesOf = new Dictionary<int, float[]>();
            foreach (var queries in new[] { 1, 64 })
            {
                var q = new float[queries * Dim];
                for (var n = 0; n < q.Length; n++)
                {
                    q[n] = (float)random.NextDouble() - 0.5f;
                }

                queriesOf[queries] = q;
            }

            foreach (var type in new[] { "f32", "f16" })
            {
                var path = Path.Combine(dir, type);
                using var index = ExactIndex.Open(path);
                var bytes = (double)Rows * Dim * (type == "f32" ? 4 : 2);
                var name = type == "f32" ? "float32" : "float16";

                // Interleaved: the bandwidth probe, 1 query, 64 queries, so a burst of load from other jobs hits all alike.
                var sum = new List<double>();
                var times = new Dictionary<int, List<double>> { [1] = [], [64] = [] };
                ReadBandwidth(Path.Combine(path, ExactIndex.VectorsFileName), (long)bytes);
                foreach (var queries in times.Keys)
                {
                    index.Search(queriesOf[queries], queries, K);
                }

                for (var n = 0; n < repeat; n++)
                {
                    sum.Add(ReadBandwidth(Path.Combine(path, ExactIndex.VectorsFileName), (long)bytes));
                    foreach (var queries in times.Keys)
                    {
                        var sw = Stopwatch.StartNew();
                        GC.KeepAlive(index.Search(queriesOf[queries], queries, K));
                        times[queries].Add(sw.Elapsed.TotalMilliseconds);
                    }
                }

                var (sumMedian, sumMin) = Stats(sum);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"machine read bandwidth ({Environment.ProcessorCount} threads, SIMD sum over the mapped {name} matrix): median {bytes / sumMedian / 1e6:F1} GB/s ({sumMedian:F2} ms), best {bytes / sumMin / 1e6:F1} GB/s"));
                foreach (var (queries, list) in times)
                {
                    var (median, min) = Stats(list);
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"MedVlp ExactIndex ({name}, memory-mapped) top-{K} over {Rows} x {Dim}, {queries} quer{(queries == 1 ? "y" : "ies")}: median {median:F2} ms (min {min:F2}), {bytes / median / 1e6:F1} GB/s of matrix ({sumMedian / median:P0} of the read bandwidth at the medians)"));
                    Append(timesFile, $"medvlp-{type}", queries, list);
                }

                Append(timesFile, $"sum-{type}", 0, sum);
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>Milliseconds for all cores to sum the mapped file with 512-bit (or narrower) vector adds, claiming
    /// 1 MiB chunks from a shared counter: the ceiling of a memory-bound scan of that matrix.</summary>
    private static unsafe double ReadBandwidth(string path, long bytes)
    {
        using var file = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        using var view = file.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        byte* pointer = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
        try
        {
            var start = (nint)(pointer + view.PointerOffset + (view.Capacity - bytes));
            const int Chunk = 1 << 20;
            var chunks = (int)(bytes / Chunk);
            var next = -1;
            var sw = Stopwatch.StartNew();
            Parallel.For(0, Environment.ProcessorCount, _ =>
            {
                var total = Vector512<float>.Zero;
                int c;
                while ((c = Interlocked.Increment(ref next)) < chunks)
                {
                    var p = (float*)(start + ((long)c * Chunk));
                    Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
                    for (var i = 0; i < Chunk / 4; i += 64)
                    {
                        a0 += Vector512.Load(p + i);
                        a1 += Vector512.Load(p + i + 16);
                        a2 += Vector512.Load(p + i + 32);
                        a3 += Vector512.Load(p + i + 48);
                    }

                    total += (a0 + a1) + (a2 + a3);
                }

                GC.KeepAlive(Vector512.Sum(total));
            });
            return sw.Elapsed.TotalMilliseconds * bytes / ((long)chunks * Chunk);
        }
        finally
        {
            view.SafeMemoryMappedViewHandle.ReleasePointer();
        }
    }

    private static (double Median, double Min) Stats(List<double> times)
    {
        var sorted = times.Order().ToList();
        return (sorted[sorted.Count / 2], sorted[0]);
    }

    private static void Append(string? file, string implementation, int queries, List<double> times)
    {
        if (file is not null)
        {
            File.AppendAllText(file, JsonSerializer.Serialize(new { impl = implementation, queries, times }) + "\n");
        }
    }
}
