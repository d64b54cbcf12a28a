using System.Diagnostics;
using System.Globalization;
using MedVlp.Distributed;
using MedVlp.Losses;
using MedVlp.Modeling;
using MedVlp.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MedVlp.Benchmarks;

/// <summary>
/// Data-parallel measures, run once alone and once under <c>mpirun</c> by <c>benchmarks/distributed.sh</c>
/// (BenchmarkDotNet cannot start MPI jobs): all-reduce bandwidth of a gradient-sized buffer next to this machine's
/// memory-copy bandwidth, and the training-step time of the demo-sized clip3d model at a fixed per-rank batch.
/// </summary>
internal static class DistributedBenchmarks
{
    /// <summary><c>mpi-allreduce [MB] [iterations]</c>: average time of an in-place float32 sum all-reduce.</summary>
    public static void AllReduce(string[] args)
    {
        var megabytes = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 100;
        var iterations = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 10;
        using var group = ProcessGroup.Create();
        var bytes = (long)megabytes * 1_000_000;
        using var gradients = ones(bytes / 4, ScalarType.Float32);
        if (group.IsMain)
        {
            var copy = MemoryCopyBandwidth(bytes, iterations);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"memory copy (one thread, Buffer.MemoryCopy) of {megabytes} MB: {copy.Seconds * 1e3:F1} ms, {copy.GigabytesPerSecond:F2} GB/s"));
        }

        group.AllReduce(gradients); // warm-up: connection set-up, page faults
        group.Barrier();
        var times = new List<double>();
        for (var i = 0; i < iterations; i++)
        {
            var clock = Stopwatch.StartNew();
            group.AllReduce(gradients, ReduceOperation.Average);
            times.Add(clock.Elapsed.TotalSeconds);
        }

        if (group.IsMain)
        {
            times.Sort();
            var median = times[times.Count / 2];
            var n = group.WorldSize;

            // NCCL's convention: algorithm bandwidth = size / time; bus bandwidth = algbw * 2(n-1)/n, the bytes each
            // rank must move in a ring all-reduce, comparable with a link's (here: memory's) bandwidth.
            var algorithm = bytes / median / 1e9;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"all-reduce {megabytes} MB float32 on {n} ranks ({group.Backend}): median {median * 1e3:F1} ms (min {times[0] * 1e3:F1}), " +
                $"algorithm bandwidth {algorithm:F2} GB/s, bus bandwidth {algorithm * 2 * (n - 1) / n:F2} GB/s"));
        }

        group.Dispose();
    }

    /// <summary><c>mpi-step [per-rank batch] [steps]</c>: training-step time of the demo-sized clip3d model.</summary>
    public static void Step(string[] args)
    {
        var perRank = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 8;
        var steps = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 10;
        using var group = ProcessGroup.Create();
        torch.set_num_threads(1); // one thread per rank: 2 ranks use this machine's 2 cores, 1 rank one of them
        var config = Clip3dConfig.Tiny(30522);
        torch.random.manual_seed(1);
        using var model = new DualEncoderModel(config);
        model.train();
        var named = model.named_parameters().Where(p => p.parameter.requires_grad).ToArray();
        var parameters = named.Select(p => p.parameter).ToArray();
        using var optimizer = optim.AdamW(parameters, lr: 1e-4);
        using var dataParallel = new DataParallel(group, parameters);
        dataParallel.BroadcastParameters(model.buffers());
        using var loss = new ClipLoss(new ClipLossOptions { Gatherer = new ProcessGroupGatherer(group) });
        var size = config.Volume.InputSize;
        torch.random.manual_seed(2 + group.Rank);
        using var volumes = rand([perRank, 1, size, size, size]);
        using var ids = randint(1000, 5000, [perRank, 64]);
        using var mask = ones(perRank, 64, ScalarType.Int64);
        var compute = new List<double>();
        var communicate = new List<double>();
        for (var s = 0; s < steps + 2; s++)
        {
            using var scope = NewDisposeScope();
            var clock = Stopwatch.StartNew();
            optimizer.zero_grad();
            var output = loss.forward(new ContrastiveInput(model.EncodeImages(volumes), model.EncodeTexts(ids, mask), model.LogitScale()));
            output.Total.backward();
            var backward = clock.Elapsed.TotalSeconds;
            dataParallel.AllReduceGradients();
            var reduced = clock.Elapsed.TotalSeconds;
            nn.utils.clip_grad_norm_(parameters, 1.0);
            optimizer.step();
            var total = clock.Elapsed.TotalSeconds;
            if (s >= 2)
            {
                compute.Add(total - (reduced - backward));
                communicate.Add(reduced - backward);
            }
        }

        if (group.IsMain)
        {
            var parameterCount = parameters.Sum(p => p.numel());
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"clip3d tiny, the demo size ({parameterCount / 1e6:F2} M parameters, {parameterCount * 4 / 1e6:F1} MB of gradients), {group.WorldSize} rank(s), per-rank batch {perRank}: " +
                $"step median {Median(compute.Zip(communicate, (a, b) => a + b)) * 1e3:F1} ms, of which gradient all-reduce {Median(communicate) * 1e3:F1} ms; " +
                $"global batch {perRank * group.WorldSize}"));
        }

        group.Dispose();
    }

    private static (double Seconds, double GigabytesPerSecond) MemoryCopyBandwidth(long bytes, int iterations)
    {
        var source = GC.AllocateUninitializedArray<byte>((int)bytes);
        var target = GC.AllocateUninitializedArray<byte>((int)bytes);
        Array.Fill(source, (byte)1);
        Array.Fill(target, (byte)0);
        var times = new List<double>();
        for (var i = 0; i < iterations + 1; i++)
        {
            var clock = Stopwatch.StartNew();
            unsafe
            {
                fixed (byte* s = source)
                fixed (byte* t = target)
                {
                    Buffer.MemoryCopy(s, t, bytes, bytes);
                }
            }

            times.Add(clock.Elapsed.TotalSeconds);
        }

        var median = times.Skip(1).Order().ElementAt(iterations / 2);
        return (median, bytes / median / 1e9);
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted[sorted.Length / 2];
    }
}
