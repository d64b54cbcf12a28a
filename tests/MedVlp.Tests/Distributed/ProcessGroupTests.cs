using MedVlp.Distributed;
using MedVlp.Losses;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MedVlp.Tests.Distributed;

/// <summary>The single-process fallback and argument checks, in this process (the multi-process behaviour is in <see cref="MpiTrainingTests"/>).</summary>
public sealed class ProcessGroupTests
{
    [Fact]
    public void WithoutAnMpiLauncherTheGroupIsOneProcess()
    {
        Assert.False(ProcessGroup.LaunchedByMpi);
        using var group = ProcessGroup.Create();
        Assert.IsType<SingleProcessGroup>(group);
        Assert.Equal((0, 1, true, "single"), (group.Rank, group.WorldSize, group.IsMain, group.Backend));
    }

    [Fact]
    public void SingleProcessCollectivesAreTheIdentity()
    {
        using var group = new SingleProcessGroup();
        using var t = arange(0, 6, dtype: ScalarType.Float32).reshape(2, 3);
        using var copy = t.clone();
        group.AllReduce(t, ReduceOperation.Average);
        group.Broadcast(t);
        group.Barrier();
        Assert.True(t.allclose(copy, 0, 0));
        using var gathered = group.AllGather(t);
        using var gatheredV = group.AllGatherVariable(t);
        Assert.True(gathered.allclose(t, 0, 0));
        Assert.True(gatheredV.allclose(t, 0, 0));
        Assert.NotSame(t, gathered);

        var gatherer = new ProcessGroupGatherer(group);
        Assert.Same(t, gatherer.AllGather(t));
        Assert.Equal((0, 1), (gatherer.Rank, gatherer.WorldSize));
    }

    [Fact]
    public void BadTensorsGetClearErrors()
    {
        using var group = new SingleProcessGroup();
        using var half = zeros(3, ScalarType.Float16);
        var e = Assert.Throws<ArgumentException>(() => group.AllReduce(half));
        Assert.Contains("Float16", e.Message, StringComparison.Ordinal);
        using var ints = zeros(3, ScalarType.Int32);
        Assert.Contains("floating-point", Assert.Throws<ArgumentException>(() => group.AllReduce(ints, ReduceOperation.Average)).Message, StringComparison.Ordinal);
        using var scalar = tensor(1f);
        Assert.Throws<ArgumentException>(() => group.AllGather(scalar));
        Assert.Throws<ArgumentOutOfRangeException>(() => group.Broadcast(ints, 1));
        group.Dispose();
        Assert.Throws<ObjectDisposedException>(() => group.AllReduce(ints));
    }

    [Fact]
    public void DataParallelOnOneProcessLeavesGradientsAsTheyAre()
    {
        using var scope = NewDisposeScope();
        using var group = new SingleProcessGroup();
        var p = new Parameter(ones(4, 3));
        p.grad = full(4, 3, 2f);
        using var dp = new DataParallel(group, [p], new DataParallelOptions { BucketBytes = 16 });
        dp.BroadcastParameters();
        dp.AllReduceGradients();
        Assert.True(p.grad!.allclose(full(4, 3, 2f), 0, 0));
        Assert.Equal(1, dp.BucketCount);
    }

    [Fact]
    public void TheOpenMpiLibraryResolvesEverySymbolTheBindingUses()
    {
        // Loads libmpi.so.40 and resolves every function and handle; does not initialise MPI in the test host.
        var mpi = MpiNative.Load();
        Assert.NotEqual(0, mpi.CommWorld);
        Assert.NotEqual(mpi.Float, mpi.Double);
        Assert.NotEqual(mpi.OpSum, mpi.OpMax);
        unsafe
        {
            int major, minor;
            Assert.Equal(0, mpi.GetVersion(&major, &minor));
            Assert.Equal((3, 1), (major, minor)); // Open MPI 4.1 implements MPI 3.1
        }
    }
}
