using BenchmarkDotNet.Attributes;
using MedVlp.Serialization;
using Microsoft.Win32.SafeHandles;
using static TorchSharp.torch;

namespace MedVlp.Benchmarks;

/// <summary>
/// Loading a 500 MB safetensors file (25 F32 tensors of 20 MB, plus F16/BF16 ones) into TorchSharp tensors, against
/// reading the same file's bytes once from the page cache (into a buffer allocated per call, as a load must, and into
/// one allocated once). Issue 12 asks for at most 1.5x the read.
/// </summary>
[MemoryDiagnoser]
public class WeightLoadBenchmarks : IDisposable
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), $"medvlp-bench-{Environment.ProcessId}.safetensors");
    private byte[] _buffer = [];
    private long _length;

    [GlobalSetup]
    public void Setup()
    {
        using (var scope = NewDisposeScope())
        {
            random.manual_seed(0);
            var tensors = new Dictionary<string, Tensor>();
            for (var n = 0; n < 24; n++)
            {
                tensors[$"layer.{n}.weight"] = randn(2500, 2000); // 20 MB each
            }

            tensors["half.weight"] = randn(2500, 2000).to_type(ScalarType.Float16);
            tensors["bf16.weight"] = randn(2500, 2000).to_type(ScalarType.BFloat16);
            Safetensors.Save(_path, tensors);
        }

        _length = new FileInfo(_path).Length;
        _buffer = new byte[_length];
        Console.WriteLine($"// {_path}: {_length / 1e6:F0} MB");
        ReadIntoPreallocatedBuffer(); // page cache warm
    }

    /// <summary>The floor: the file's bytes copied once from the page cache into memory allocated once.</summary>
    [Benchmark]
    public long ReadIntoPreallocatedBuffer()
    {
        using var handle = File.OpenHandle(_path);
        return ReadAll(handle, _buffer);
    }

    /// <summary>The file's bytes read once into a fresh buffer (what any load must at least do).</summary>
    [Benchmark(Baseline = true)]
    public long ReadIntoNewBuffer()
    {
        var buffer = GC.AllocateUninitializedArray<byte>((int)_length);
        using var handle = File.OpenHandle(_path);
        return ReadAll(handle, buffer);
    }

    /// <summary>MedVlp: header validated, every tensor allocated and filled straight from the file.</summary>
    [Benchmark]
    public long LoadSafetensors()
    {
        var tensors = Safetensors.Load(_path);
        long n = 0;
        foreach (var t in tensors.Values)
        {
            n += t.numel();
            t.Dispose();
        }

        return n;
    }

    [GlobalCleanup]
    public void Dispose()
    {
        if (File.Exists(_path))
        {
            File.Delete(_path);
        }

        GC.SuppressFinalize(this);
    }

    private static long ReadAll(SafeFileHandle handle, byte[] buffer)
    {
        long done = 0;
        while (done < buffer.Length)
        {
            var n = RandomAccess.Read(handle, buffer.AsSpan((int)done, (int)Math.Min(1 << 24, buffer.Length - done)), done);
            if (n <= 0)
            {
                break;
            }

            done += n;
        }

        return done;
    }
}
