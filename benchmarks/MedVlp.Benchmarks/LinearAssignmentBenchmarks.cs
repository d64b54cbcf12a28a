using BenchmarkDotNet.Attributes;
using MedVlp.Losses;

namespace MedVlp.Benchmarks;

/// <summary>
/// <see cref="LinearAssignment.Solve(float[,])"/> on random uniform [0,1) square costs; the Python reference is
/// benchmarks/reference/lap_scipy.py (scipy.optimize.linear_sum_assignment on the same distribution).
/// </summary>
[MemoryDiagnoser]
public class LinearAssignmentBenchmarks
{
    private float[,] _float = new float[0, 0];
    private double[,] _double = new double[0, 0];

    /// <summary>Matrix side.</summary>
    [Params(64, 256, 1024)]
    public int N { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(1234 + N);
        _float = new float[N, N];
        _double = new double[N, N];
        for (var i = 0; i < N; i++)
        {
            for (var j = 0; j < N; j++)
            {
                _float[i, j] = (float)rng.NextDouble();
                _double[i, j] = _float[i, j];
            }
        }
    }

    [Benchmark(Baseline = true)]
    public int[] SolveFloat() => LinearAssignment.Solve(_float);

    [Benchmark]
    public int[] SolveDouble() => LinearAssignment.Solve(_double);
}
