using System.Diagnostics;
using System.Globalization;
using MedVlp.Data;
using MedVlp.Volumes;
using MedVlp.Volumes.IO;
using MedVlp.Volumes.Transforms;

namespace MedVlp.Benchmarks;

/// <summary>
/// A quick side-by-side harness (<c>-- side-by-side</c>) printing the same measures as
/// benchmarks/reference/resample_reference.py: median and minimum wall time and the process CPU time per call, which is
/// the steadier measure on a shared, loaded machine; and the COLIPRI loader's volumes per second by worker count.
/// </summary>
internal static class SideBySide
{
    public static void Run(int repeat)
    {
        Console.WriteLine($"MedVlp, .NET {Environment.Version}, {Environment.ProcessorCount} processors");
        foreach (var (file, mm) in new[] { ("mricron/ch2better.nii.gz", 1.0), ("mricron/ch2.nii.gz", 2.0) })
        {
            var volume = VolumeReader.Read(TestData.File(file));
            var toSpacing = new ResampleToSpacing(mm);
            var (shape, _) = toSpacing.GetTargetGrid(volume);
            var toShape = new ResampleToShape { Shape = shape };
            var a = Time(() => toSpacing.Apply(volume), repeat);
            var b = Time(() => toShape.Apply(volume), repeat);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{file} -> {mm:G} mm {volume.Shape} -> {shape}: ResampleToSpacing median {a.Median:F1} ms (min {a.Min:F1}, cpu {a.Cpu:F1} ms/call); ResampleToShape (F.interpolate's grid) median {b.Median:F1} ms (min {b.Min:F1}, cpu {b.Cpu:F1} ms/call)"));
        }

        var path = TestData.File("mricron/ch2.nii.gz");
        var entries = Enumerable.Range(0, 8).Select(i => new ManifestEntry { Id = $"v{i}", Path = path }).ToArray();
        foreach (var workers in new[] { 1, 2, 4 })
        {
            var loader = new VolumeDataLoader(entries, TransformPresets.Colipri(), new VolumeLoaderOptions { BatchSize = 2, Workers = workers });
            var t = Time(() =>
            {
                var n = 0;
                foreach (var batch in loader.ReadEpochAsync(0).ToBlockingEnumerable())
                {
                    n += batch.Samples.Count;
                }

                return n;
            }, 3);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"loader, colipri pipeline on ch2.nii.gz (read gzip NIfTI + SAR + 2 mm + clamp + rescale + 192^3), {workers} worker(s): {entries.Length / (t.Median / 1000):F2} volumes/s (median epoch {t.Median:F0} ms, cpu {t.Cpu / entries.Length:F0} ms/volume)"));
        }
    }

    private static (double Median, double Min, double Cpu) Time<T>(Func<T> action, int repeat)
    {
        action();
        var process = Process.GetCurrentProcess();
        var times = new List<double>();
        process.Refresh();
        var cpu0 = process.TotalProcessorTime;
        for (var n = 0; n < repeat; n++)
        {
            var sw = Stopwatch.StartNew();
            GC.KeepAlive(action());
            times.Add(sw.Elapsed.TotalMilliseconds);
        }

        process.Refresh();
        var cpu = (process.TotalProcessorTime - cpu0).TotalMilliseconds / repeat;
        times.Sort();
        return (times[times.Count / 2], times[0], cpu);
    }
}
