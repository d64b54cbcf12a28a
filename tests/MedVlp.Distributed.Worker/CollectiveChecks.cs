using MedVlp.Distributed;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.DistributedWorker;

/// <summary>Every collective against values each rank can compute on its own; the first mismatch throws (and aborts the job).</summary>
internal static class CollectiveChecks
{
    public static int Run(ProcessGroup group)
    {
        var r = group.Rank;
        var w = group.WorldSize;
        var sumOfRanks = w * (w - 1) / 2.0;

        // All-reduce: float32 (sum, average, max, min), float64, int64, int32, and a non-contiguous view.
        using (var t = arange(0, 5, dtype: ScalarType.Float32) + r)
        {
            group.AllReduce(t);
            Expect(t, arange(0, 5, dtype: ScalarType.Float32) * w + sumOfRanks, "all-reduce sum float32");
        }

        using (var t = full(3, (float)r, ScalarType.Float32))
        {
            group.AllReduce(t, ReduceOperation.Average);
            Expect(t, full(3, (float)(sumOfRanks / w), ScalarType.Float32), "all-reduce average");
        }

        using (var t = tensor(new float[] { r, -r }))
        {
            group.AllReduce(t, ReduceOperation.Max);
            Expect(t, tensor(new float[] { w - 1, 0 }), "all-reduce max");
        }

        using (var t = tensor(new double[] { r, -r }))
        {
            group.AllReduce(t, ReduceOperation.Min);
            Expect(t, tensor(new double[] { 0, -(w - 1) }), "all-reduce min float64");
        }

        using (var t = tensor(new long[] { (1L << 40) + r }))
        {
            group.AllReduce(t);
            Equal(t.ToInt64(), (w * (1L << 40)) + (long)sumOfRanks, "all-reduce int64");
        }

        using (var t = tensor(new int[] { r + 1 }))
        {
            group.AllReduce(t);
            Equal(t.ToInt32(), (w * (w + 1)) / 2, "all-reduce int32");
        }

        using (var m = arange(0, 6, dtype: ScalarType.Float32).reshape(2, 3) * (r + 1))
        {
            using var view = m.t(); // not contiguous: staged through a copy and written back
            group.AllReduce(view);
            Expect(m, arange(0, 6, dtype: ScalarType.Float32).reshape(2, 3) * (w * (w + 1) / 2), "all-reduce of a transposed view");
        }

        // All-gather (equal rows) and all-gather-v (rank r contributes r + 1 rows).
        using (var local = full(2, 3, (float)r, ScalarType.Float32))
        using (var all = group.AllGather(local))
        {
            using var expected = arange(0, w, dtype: ScalarType.Float32).repeat_interleave(2).unsqueeze(1).expand(2 * w, 3);
            Expect(all, expected, "all-gather");
        }

        using (var local = full(r + 1, 2, (long)r, ScalarType.Int64))
        using (var all = group.AllGatherVariable(local))
        {
            var expected = Enumerable.Range(0, w).SelectMany(k => Enumerable.Repeat((long)k, k + 1)).SelectMany(v => new[] { v, v }).ToArray();
            using var e = tensor(expected).reshape(-1, 2);
            Expect(all, e, "all-gather-v");
        }

        // Broadcast from the last rank.
        using (var t = full(4, (double)r, ScalarType.Float64))
        {
            group.Broadcast(t, w - 1);
            Expect(t, full(4, (double)(w - 1), ScalarType.Float64), "broadcast");
        }

        group.Barrier();

        // The gatherer: values are the global batch. Each rank's loss weighs the rows by (rank + 1), so the local rows'
        // gradient tells the modes apart: own loss only, own loss times W, or the sum of every rank's loss.
        foreach (var mode in (GatheredGradient[])[GatheredGradient.ScaledByWorldSize, GatheredGradient.LocalOnly, GatheredGradient.AllReduced])
        {
            using var scope = NewDisposeScope();
            var gatherer = new ProcessGroupGatherer(group, mode);
            var x = (arange(0, 6, dtype: ScalarType.Float32).reshape(3, 2) + (10 * r)).requires_grad_();
            var all = gatherer.AllGather(x);
            var expectedValues = cat(Enumerable.Range(0, w).Select(k => arange(0, 6, dtype: ScalarType.Float32).reshape(3, 2) + (10 * k)).ToArray(), 0);
            Expect(all.detach(), expectedValues, $"gathered values ({mode})");
            var weights = arange(0, 6 * w, dtype: ScalarType.Float32).reshape(3 * w, 2);
            (all * weights * (r + 1)).sum().backward();
            var factor = mode switch
            {
                GatheredGradient.ScaledByWorldSize => w * (r + 1),
                GatheredGradient.LocalOnly => r + 1,
                _ => w * (w + 1) / 2,
            };
            Expect(x.grad!, weights.narrow(0, 3 * r, 3) * factor, $"gradient of the local rows ({mode})");
        }

        // Data parallel: broadcast replicas, bucketed average of gradients, untouched parameters stay without gradient.
        using (var scope = NewDisposeScope())
        {
            var parameters = new[]
            {
                new TorchSharp.Modules.Parameter(full(5, 3, (float)r, ScalarType.Float32)),
                new TorchSharp.Modules.Parameter(full(7, (float)(2 * r), ScalarType.Float32)),
                new TorchSharp.Modules.Parameter(full(2, 2, (double)r, ScalarType.Float64)),
                new TorchSharp.Modules.Parameter(zeros(4)),
            };
            using var dp = new DataParallel(group, parameters, new DataParallelOptions { BucketBytes = 40 });
            if (dp.BucketCount < 3)
            {
                throw new InvalidOperationException($"expected several buckets with 40-byte buckets, got {dp.BucketCount}");
            }

            dp.BroadcastParameters();
            Expect(parameters[0].detach(), zeros(5, 3), "broadcast parameters");
            Expect(parameters[1].detach(), zeros(7), "broadcast parameters");
            for (var i = 0; i < 3; i++)
            {
                parameters[i].grad = full(parameters[i].shape, (double)(r + 1 + i), parameters[i].dtype);
            }

            dp.AllReduceGradients();
            using (NewDisposeScope())
            {
                for (var i = 0; i < 3; i++)
                {
                    parameters[i].grad!.fill_(r + 1 + i);
                }
            }

            var live = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            dp.AllReduceGradients();
            Equal(DisposeScopeManager.Statistics.ThreadTotalLiveCount, live, "live tensors after a second all-reduce of the gradients");
            for (var i = 0; i < 3; i++)
            {
                Expect(parameters[i].grad!, full(parameters[i].shape, ((w + 1) / 2.0) + i, parameters[i].dtype), $"averaged gradient {i}");
            }

            if (parameters[3].grad is not null)
            {
                throw new InvalidOperationException("a parameter without gradient on every rank got one");
            }
        }

        Equal(group.LocalRank, r, "local rank (one machine)");
        Console.WriteLine($"collectives ok: rank {r} of {w} ({group.Backend})");
        return 0;
    }

    private static void Expect(Tensor actual, Tensor expected, string what)
    {
        using var a = actual.to(ScalarType.Float64);
        using var e = expected.to(ScalarType.Float64);
        if (!a.shape.SequenceEqual(e.shape) || !a.allclose(e, rtol: 0, atol: 1e-6))
        {
            throw new InvalidOperationException($"{what}: got {a.ToString(TorchSharp.TensorStringStyle.Julia)}, expected {e.ToString(TorchSharp.TensorStringStyle.Julia)}");
        }
    }

    private static void Equal<T>(T actual, T expected, string what)
        where T : IEquatable<T>
    {
        if (!actual.Equals(expected))
        {
            throw new InvalidOperationException($"{what}: got {actual}, expected {expected}");
        }
    }
}
