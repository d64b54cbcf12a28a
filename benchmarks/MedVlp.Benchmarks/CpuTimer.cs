using System.Diagnostics;

namespace MedVlp.Benchmarks;

/// <summary>Wall-clock and process CPU time of repeated calls (the side-by-side benchmarks' one timing loop).</summary>
/// <param name="Median">Median wall-clock milliseconds per call.</param>
/// <param name="Min">Fastest wall-clock milliseconds.</param>
/// <param name="Cpu">Median process CPU milliseconds per call (every thread of the process: libtorch's, the GC's, the
/// JIT's), which a loaded, shared machine disturbs far less than wall time.</param>
/// <param name="MinCpu">Least process CPU milliseconds.</param>
internal readonly record struct Timing(double Median, double Min, double Cpu, double MinCpu);

internal static class CpuTimer
{
    /// <summary>Runs <paramref name="action"/> <paramref name="warmup"/> times untimed (the JIT's tiered compilation and
    /// libtorch's first-call work), then <paramref name="repeats"/> timed times.</summary>
    public static Timing Measure(Action action, int warmup, int repeats)
    {
        for (var n = 0; n < warmup; n++)
        {
            action();
        }

        var wall = new List<double>();
        var cpu = new List<double>();
        using var process = Process.GetCurrentProcess();
        for (var n = 0; n < repeats; n++)
        {
            process.Refresh();
            var cpu0 = process.TotalProcessorTime;
            var clock = Stopwatch.StartNew();
            action();
            wall.Add(clock.Elapsed.TotalMilliseconds);
            process.Refresh();
            cpu.Add((process.TotalProcessorTime - cpu0).TotalMilliseconds);
        }

        wall.Sort();
        cpu.Sort();
        return new Timing(wall[wall.Count / 2], wall[0], cpu[cpu.Count / 2], cpu[0]);
    }
}
