using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Distributed;

/// <summary>How <see cref="ProcessGroup.AllReduce(Tensor, ReduceOperation)"/> combines the processes' values.</summary>
public enum ReduceOperation
{
    /// <summary>Element-wise sum.</summary>
    Sum,

    /// <summary>Element-wise sum divided by the world size (floating-point tensors only).</summary>
    Average,

    /// <summary>Element-wise maximum.</summary>
    Max,

    /// <summary>Element-wise minimum.</summary>
    Min,
}

/// <summary>
/// The processes of a data-parallel job and the collectives between them (all-reduce, all-gather, broadcast, barrier)
/// on TorchSharp tensors. <see cref="Create"/> returns an <see cref="MpiProcessGroup"/> when the process was started
/// by <c>mpirun</c>/<c>srun</c> and a <see cref="SingleProcessGroup"/> otherwise, so the same program runs alone or on
/// many machines.
/// </summary>
/// <remarks>
/// <para>Collectives are blocking and must be called by every process in the same order with tensors of the same
/// shape (all-gather of variable rows excepted). CPU tensors are read and written in place; CUDA tensors are staged
/// through pinned host memory (Debian's Open MPI is not CUDA-aware).</para>
/// <para>The group owns the MPI session: dispose it at the end of the program (it calls <c>MPI_Finalize</c>).</para>
/// </remarks>
public abstract class ProcessGroup : IDisposable
{
    private protected ProcessGroup()
    {
    }

    /// <summary>This process's index in [0, <see cref="WorldSize"/>).</summary>
    public abstract int Rank { get; }

    /// <summary>The number of processes.</summary>
    public abstract int WorldSize { get; }

    /// <summary>Whether this is rank 0, the process that writes checkpoints, logs and plots.</summary>
    public bool IsMain => Rank == 0;

    /// <summary>This process's index among the processes on its machine, from the launcher's environment
    /// (<c>OMPI_COMM_WORLD_LOCAL_RANK</c>, Slurm's <c>SLURM_LOCALID</c>, MPICH's <c>MPI_LOCALRANKID</c>); 0 when alone.
    /// Use it to pick the GPU: <c>torch.CUDA</c> device <c>LocalRank</c>.</summary>
    public int LocalRank
    {
        get
        {
            if (WorldSize == 1)
            {
                return 0;
            }

            foreach (var name in (string[])["OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID"])
            {
                if (int.TryParse(Environment.GetEnvironmentVariable(name), out var local) && local >= 0)
                {
                    return local;
                }
            }

            return 0;
        }
    }

    /// <summary>The transport: <c>mpi</c> or <c>single</c>.</summary>
    public abstract string Backend { get; }

    /// <summary>Whether the environment says this process was started by an MPI launcher (Open MPI's <c>mpirun</c>,
    /// or Slurm's <c>srun</c> with PMIx/PMI2) as one of several ranks.</summary>
    public static bool LaunchedByMpi
    {
        get
        {
            foreach (var name in (string[])["OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE"])
            {
                if (int.TryParse(Environment.GetEnvironmentVariable(name), out var size) && size >= 1)
                {
                    return true;
                }
            }

            return Environment.GetEnvironmentVariable("PMIX_RANK") is not null;
        }
    }

    /// <summary>
    /// Joins the job: MPI when <see cref="LaunchedByMpi"/> (or <see cref="ProcessGroupOptions.Backend"/> says so),
    /// otherwise a single process.
    /// </summary>
    /// <param name="options">Options; null for automatic choice.</param>
    public static ProcessGroup Create(ProcessGroupOptions? options = null)
    {
        var backend = options?.Backend ?? ProcessGroupBackend.Auto;
        return backend switch
        {
            ProcessGroupBackend.Single => new SingleProcessGroup(),
            ProcessGroupBackend.Mpi => MpiProcessGroup.Initialize(),
            ProcessGroupBackend.Auto => LaunchedByMpi ? MpiProcessGroup.Initialize() : new SingleProcessGroup(),
            _ => throw new ArgumentOutOfRangeException(nameof(options), backend, "Unknown process-group backend."),
        };
    }

    /// <summary>Combines <paramref name="tensor"/> across all processes, in place: afterwards every process holds the result.</summary>
    /// <param name="tensor">A float32, float64, int32 or int64 tensor (CPU or CUDA), the same shape on every process.</param>
    /// <param name="operation">How values are combined.</param>
    public void AllReduce(Tensor tensor, ReduceOperation operation = ReduceOperation.Sum)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        ThrowIfDisposed();
        var type = ElementType(tensor, nameof(tensor));
        if (operation == ReduceOperation.Average && type is not (ScalarType.Float32 or ScalarType.Float64))
        {
            throw new ArgumentException($"Average needs a floating-point tensor; got {tensor.dtype}.", nameof(tensor));
        }

        if (WorldSize == 1 || tensor.numel() == 0)
        {
            return;
        }

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var host = Stage(tensor);
        unsafe
        {
            fixed (byte* data = host.bytes)
            {
                AllReduceCore((nint)data, host.numel(), type, operation == ReduceOperation.Average ? ReduceOperation.Sum : operation);
            }
        }

        if (operation == ReduceOperation.Average)
        {
            host.div_(WorldSize);
        }

        if (!ReferenceEquals(host, tensor))
        {
            tensor.copy_(host);
        }
    }

    /// <summary>Concatenates every process's <paramref name="local"/> along dimension 0 in rank order.</summary>
    /// <param name="local">This process's rows; the same shape on every process.</param>
    /// <returns>A new tensor (WorldSize*rows x ...) on <paramref name="local"/>'s device, without gradient.</returns>
    public Tensor AllGather(Tensor local)
    {
        ArgumentNullException.ThrowIfNull(local);
        ThrowIfDisposed();
        var type = ElementType(local, nameof(local));
        if (local.dim() == 0)
        {
            throw new ArgumentException("All-gather concatenates along dimension 0; got a scalar.", nameof(local));
        }

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var host = Stage(local);
        var shape = (long[])local.shape.Clone();
        shape[0] *= WorldSize;
        var result = empty(shape, local.dtype, CPU);
        CheckCount(host.numel(), "all-gather");
        unsafe
        {
            fixed (byte* send = host.bytes)
            fixed (byte* receive = result.bytes)
            {
                AllGatherCore((nint)send, (int)host.numel(), (nint)receive, type);
            }
        }

        return scope.MoveToOuter(local.device.type == DeviceType.CPU ? result : result.to(local.device));
    }

    /// <summary>Concatenates every process's <paramref name="local"/> along dimension 0 in rank order, when processes
    /// hold different numbers of rows (<c>MPI_Allgatherv</c>); the other dimensions must agree.</summary>
    /// <param name="local">This process's rows.</param>
    /// <returns>A new tensor (total rows x ...) on <paramref name="local"/>'s device, without gradient.</returns>
    public Tensor AllGatherVariable(Tensor local)
    {
        ArgumentNullException.ThrowIfNull(local);
        ThrowIfDisposed();
        var type = ElementType(local, nameof(local));
        if (local.dim() == 0)
        {
            throw new ArgumentException("All-gather concatenates along dimension 0; got a scalar.", nameof(local));
        }

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var rowSize = local.shape.Skip(1).Aggregate(1L, (a, b) => a * b);

        // Every process learns every other's row count and row shape, so a mismatch is an exception, not corrupt memory.
        var header = tensor(new long[] { local.shape[0], rowSize, local.dim() }).reshape(1, 3);
        var headers = AllGather(header).data<long>().ToArray();
        var counts = new int[WorldSize];
        var displacements = new int[WorldSize];
        long total = 0;
        for (var r = 0; r < WorldSize; r++)
        {
            if (headers[(r * 3) + 1] != rowSize || headers[(r * 3) + 2] != local.dim())
            {
                throw new ArgumentException(
                    $"All-gather of variable rows needs the same row shape on every process; rank {r} has {headers[(r * 3) + 1]} elements per row in " +
                    $"{headers[(r * 3) + 2]} dimensions, rank {Rank} has {rowSize} in {local.dim()}.", nameof(local));
            }

            CheckCount(total * rowSize, "all-gather");
            displacements[r] = (int)(total * rowSize);
            CheckCount(headers[r * 3] * rowSize, "all-gather");
            counts[r] = (int)(headers[r * 3] * rowSize);
            total += headers[r * 3];
        }

        var host = Stage(local);
        var shape = (long[])local.shape.Clone();
        shape[0] = total;
        var result = empty(shape, local.dtype, CPU);
        unsafe
        {
            fixed (byte* send = host.bytes)
            fixed (byte* receive = result.bytes)
            {
                AllGatherVariableCore((nint)send, (int)host.numel(), (nint)receive, counts, displacements, type);
            }
        }

        return scope.MoveToOuter(local.device.type == DeviceType.CPU ? result : result.to(local.device));
    }

    /// <summary>Copies <paramref name="tensor"/> from <paramref name="root"/> to every process, in place.</summary>
    /// <param name="tensor">The tensor (the same shape and type on every process); its values on other ranks are overwritten.</param>
    /// <param name="root">The rank whose values are sent.</param>
    public void Broadcast(Tensor tensor, int root = 0)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        ThrowIfDisposed();
        ArgumentOutOfRangeException.ThrowIfNegative(root);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(root, WorldSize);
        var type = ElementType(tensor, nameof(tensor));
        if (WorldSize == 1 || tensor.numel() == 0)
        {
            return;
        }

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var host = Stage(tensor);
        unsafe
        {
            fixed (byte* data = host.bytes)
            {
                BroadcastCore((nint)data, host.numel(), type, root);
            }
        }

        if (!ReferenceEquals(host, tensor))
        {
            tensor.copy_(host);
        }
    }

    /// <summary>Sends <paramref name="values"/> from <paramref name="root"/> to every process, in place.</summary>
    /// <param name="values">The buffer (the same length on every process).</param>
    /// <param name="root">The rank whose values are sent.</param>
    public void Broadcast(Span<long> values, int root = 0)
    {
        ThrowIfDisposed();
        ArgumentOutOfRangeException.ThrowIfNegative(root);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(root, WorldSize);
        if (WorldSize == 1 || values.IsEmpty)
        {
            return;
        }

        unsafe
        {
            fixed (long* data = values)
            {
                BroadcastCore((nint)data, values.Length, ScalarType.Int64, root);
            }
        }
    }

    /// <summary>Sums (or otherwise combines) <paramref name="values"/> across processes, in place.</summary>
    /// <param name="values">The buffer (the same length on every process).</param>
    /// <param name="operation">How values are combined.</param>
    public void AllReduce(Span<double> values, ReduceOperation operation = ReduceOperation.Sum)
    {
        ThrowIfDisposed();
        if (WorldSize == 1 || values.IsEmpty)
        {
            return;
        }

        unsafe
        {
            fixed (double* data = values)
            {
                AllReduceCore((nint)data, values.Length, ScalarType.Float64, operation == ReduceOperation.Average ? ReduceOperation.Sum : operation);
            }
        }

        if (operation == ReduceOperation.Average)
        {
            foreach (ref var v in values)
            {
                v /= WorldSize;
            }
        }
    }

    /// <summary>Waits until every process has reached this call.</summary>
    public void Barrier()
    {
        ThrowIfDisposed();
        if (WorldSize > 1)
        {
            BarrierCore();
        }
    }

    /// <summary>Ends the whole job at once (<c>MPI_Abort</c>): every process exits with <paramref name="errorCode"/>.
    /// Call it when this rank cannot go on (an exception), so the others do not wait in a collective forever.</summary>
    /// <param name="errorCode">The exit status (non-zero).</param>
    /// <param name="reason">Written to standard error with this rank's number first.</param>
    public void Abort(int errorCode, string? reason = null)
    {
        Console.Error.WriteLine($"medvlp rank {Rank} of {WorldSize} aborts the job (exit code {errorCode}){(reason is null ? "." : ": " + reason)}");
        Console.Error.Flush();
        AbortCore(errorCode);
    }

    /// <summary>Leaves the job (MPI: <c>MPI_Finalize</c>).</summary>
    public void Dispose()
    {
        Dispose(disposing: true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases the transport.</summary>
    /// <param name="disposing">True from <see cref="Dispose()"/>.</param>
    protected virtual void Dispose(bool disposing)
    {
    }

    private protected abstract void ThrowIfDisposed();

    private protected abstract void AllReduceCore(nint buffer, long count, ScalarType type, ReduceOperation operation);

    private protected abstract void AllGatherCore(nint send, int count, nint receive, ScalarType type);

    private protected abstract void AllGatherVariableCore(nint send, int count, nint receive, int[] counts, int[] displacements, ScalarType type);

    private protected abstract void BroadcastCore(nint buffer, long count, ScalarType type, int root);

    private protected abstract void BarrierCore();

    private protected abstract void AbortCore(int errorCode);

    /// <summary>A contiguous CPU tensor with <paramref name="tensor"/>'s values: the tensor itself when it already is one,
    /// else a copy (pinned host memory for CUDA tensors, so the device-host copies run at full speed).</summary>
    private static Tensor Stage(Tensor tensor)
    {
        if (tensor.device.type == DeviceType.CPU)
        {
            return tensor.is_contiguous() ? tensor : tensor.contiguous();
        }

        var pinned = empty(tensor.shape, tensor.dtype, CPU).pin_memory();
        pinned.copy_(tensor);
        return pinned;
    }

    private static ScalarType ElementType(Tensor tensor, string parameter) => tensor.dtype switch
    {
        ScalarType.Float32 or ScalarType.Float64 or ScalarType.Int32 or ScalarType.Int64 or ScalarType.Byte => tensor.dtype,
        _ => throw new ArgumentException($"Collectives support float32, float64, int32, int64 and uint8 tensors; got {tensor.dtype}.", parameter),
    };

    private static void CheckCount(long count, string what)
    {
        if (count > int.MaxValue)
        {
            throw new ArgumentException($"An {what} of {count} elements per process exceeds MPI's int count; split the tensor.");
        }
    }
}

/// <summary>Which transport <see cref="ProcessGroup.Create"/> uses.</summary>
public enum ProcessGroupBackend
{
    /// <summary>MPI when the process was started by an MPI launcher, else a single process.</summary>
    Auto,

    /// <summary>Always a single process (world size 1).</summary>
    Single,

    /// <summary>Always MPI (a program started without <c>mpirun</c> becomes a job of one rank).</summary>
    Mpi,
}

/// <summary>Options of <see cref="ProcessGroup.Create"/>.</summary>
public sealed class ProcessGroupOptions
{
    /// <summary>The transport. Default <see cref="ProcessGroupBackend.Auto"/>.</summary>
    public ProcessGroupBackend Backend { get; init; } = ProcessGroupBackend.Auto;
}

/// <summary>A job of one process: every collective is the identity, so training code runs unchanged without MPI.</summary>
public sealed class SingleProcessGroup : ProcessGroup
{
    private bool _disposed;

    /// <inheritdoc />
    public override int Rank => 0;

    /// <inheritdoc />
    public override int WorldSize => 1;

    /// <inheritdoc />
    public override string Backend => "single";

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        _disposed = true;
        base.Dispose(disposing);
    }

    private protected override void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    private protected override void AllReduceCore(nint buffer, long count, ScalarType type, ReduceOperation operation)
    {
    }

    private protected override unsafe void AllGatherCore(nint send, int count, nint receive, ScalarType type) =>
        Buffer.MemoryCopy((void*)send, (void*)receive, (long)count * ElementSize(type), (long)count * ElementSize(type));

    private protected override unsafe void AllGatherVariableCore(nint send, int count, nint receive, int[] counts, int[] displacements, ScalarType type) =>
        AllGatherCore(send, count, receive, type);

    private protected override void BroadcastCore(nint buffer, long count, ScalarType type, int root)
    {
    }

    private protected override void BarrierCore()
    {
    }

    private protected override void AbortCore(int errorCode) => Environment.Exit(errorCode);

    internal static int ElementSize(ScalarType type) => type switch
    {
        ScalarType.Float64 or ScalarType.Int64 => 8,
        ScalarType.Byte => 1,
        _ => 4,
    };
}
