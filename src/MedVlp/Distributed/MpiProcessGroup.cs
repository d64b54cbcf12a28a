using static TorchSharp.torch;

namespace MedVlp.Distributed;

/// <summary>
/// The processes of <c>MPI_COMM_WORLD</c>, through Open MPI 4.x (<c>libmpi.so.40</c>; Debian: <c>openmpi-bin</c>,
/// <c>libopenmpi3</c>). Obtain it with <see cref="ProcessGroup.Create"/>; MPI is initialised once per process
/// (<c>MPI_Init_thread</c>, serialized threads) and finalised when the group is disposed.
/// </summary>
/// <remarks>
/// Errors on the communicator are returned, not fatal (<c>MPI_ERRORS_RETURN</c>), and surface as <see cref="MpiException"/>.
/// When a rank dies, Open MPI's launcher ends the whole job and names the rank; see the README's "Train on several machines".
/// </remarks>
public sealed unsafe class MpiProcessGroup : ProcessGroup
{
    /// <summary>Elements per MPI call for reductions and broadcasts (MPI counts are 32-bit).</summary>
    private const long MaxChunk = 1L << 30;

    private static readonly Lock InitializationLock = new();
    private static MpiProcessGroup? world;

    private readonly MpiNative.Api _mpi;
    private readonly Lock _callLock = new();
    private bool _disposed;

    private MpiProcessGroup(MpiNative.Api mpi, int rank, int size, int threadLevel)
    {
        _mpi = mpi;
        Rank = rank;
        WorldSize = size;
        ThreadLevel = threadLevel;
    }

    /// <inheritdoc />
    public override int Rank { get; }

    /// <inheritdoc />
    public override int WorldSize { get; }

    /// <inheritdoc />
    public override string Backend => "mpi";

    /// <summary>The thread support MPI granted (0 single, 1 funneled, 2 serialized, 3 multiple). Calls are serialized by a lock.</summary>
    public int ThreadLevel { get; }

    /// <summary>The MPI standard version the library implements, for example (3, 1).</summary>
    public (int Major, int Minor) StandardVersion
    {
        get
        {
            int major, minor;
            MpiNative.Check(_mpi, _mpi.GetVersion(&major, &minor), "MPI_Get_version");
            return (major, minor);
        }
    }

    internal static MpiProcessGroup Initialize()
    {
        lock (InitializationLock)
        {
            if (world is not null)
            {
                if (world._disposed)
                {
                    throw new InvalidOperationException("MPI was finalised when the previous MpiProcessGroup was disposed; MPI can be initialised only once per process.");
                }

                return world;
            }

            var mpi = MpiNative.Load();
            int initialized, finalized;
            MpiNative.Check(mpi, mpi.Initialized(&initialized, null), "MPI_Initialized");
            MpiNative.Check(mpi, mpi.Finalized(&finalized, null), "MPI_Finalized");
            if (finalized != 0)
            {
                throw new InvalidOperationException("MPI was already finalised in this process.");
            }

            var provided = MpiNative.ThreadSerialized;
            if (initialized == 0)
            {
                MpiNative.Check(mpi, mpi.InitThread(null, null, MpiNative.ThreadSerialized, &provided), "MPI_Init_thread");
            }

            MpiNative.Check(mpi, mpi.CommSetErrhandler(mpi.CommWorld, mpi.ErrorsReturn), "MPI_Comm_set_errhandler");
            int rank, size;
            MpiNative.Check(mpi, mpi.CommRank(mpi.CommWorld, &rank), "MPI_Comm_rank");
            MpiNative.Check(mpi, mpi.CommSize(mpi.CommWorld, &size), "MPI_Comm_size");
            world = new MpiProcessGroup(mpi, rank, size, provided);
            return world;
        }
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        lock (_callLock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            int finalized;
            if (_mpi.Finalized(&finalized, null) == MpiNative.Success && finalized == 0)
            {
                MpiNative.Check(_mpi, _mpi.Finalize(), "MPI_Finalize");
            }
        }

        base.Dispose(disposing);
    }

    private protected override void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    private protected override void AllReduceCore(nint buffer, long count, ScalarType type, ReduceOperation operation)
    {
        var datatype = Datatype(type);
        var op = operation switch
        {
            ReduceOperation.Sum => _mpi.OpSum,
            ReduceOperation.Max => _mpi.OpMax,
            ReduceOperation.Min => _mpi.OpMin,
            _ => throw new ArgumentOutOfRangeException(nameof(operation), operation, "Average is a sum followed by a division."),
        };
        var size = SingleProcessGroup.ElementSize(type);
        lock (_callLock)
        {
            for (long offset = 0; offset < count; offset += MaxChunk)
            {
                var n = (int)Math.Min(MaxChunk, count - offset);
                MpiNative.Check(_mpi, _mpi.Allreduce(MpiNative.InPlace, buffer + (nint)(offset * size), n, datatype, op, _mpi.CommWorld), "MPI_Allreduce");
            }
        }
    }

    private protected override void AllGatherCore(nint send, int count, nint receive, ScalarType type)
    {
        var datatype = Datatype(type);
        lock (_callLock)
        {
            MpiNative.Check(_mpi, _mpi.Allgather(send, count, datatype, receive, count, datatype, _mpi.CommWorld), "MPI_Allgather");
        }
    }

    private protected override void AllGatherVariableCore(nint send, int count, nint receive, int[] counts, int[] displacements, ScalarType type)
    {
        var datatype = Datatype(type);
        lock (_callLock)
        {
            fixed (int* c = counts)
            fixed (int* d = displacements)
            {
                MpiNative.Check(_mpi, _mpi.Allgatherv(send, count, datatype, receive, c, d, datatype, _mpi.CommWorld), "MPI_Allgatherv");
            }
        }
    }

    private protected override void BroadcastCore(nint buffer, long count, ScalarType type, int root)
    {
        var datatype = Datatype(type);
        var size = SingleProcessGroup.ElementSize(type);
        lock (_callLock)
        {
            for (long offset = 0; offset < count; offset += MaxChunk)
            {
                var n = (int)Math.Min(MaxChunk, count - offset);
                MpiNative.Check(_mpi, _mpi.Bcast(buffer + (nint)(offset * size), n, datatype, root, _mpi.CommWorld), "MPI_Bcast");
            }
        }
    }

    private protected override void BarrierCore()
    {
        lock (_callLock)
        {
            MpiNative.Check(_mpi, _mpi.Barrier(_mpi.CommWorld), "MPI_Barrier");
        }
    }

    private protected override void AbortCore(int errorCode)
    {
        // No lock: another thread may be blocked inside a collective; MPI_Abort must still get through.
        _mpi.Abort(_mpi.CommWorld, errorCode);
        Environment.Exit(errorCode);
    }

    private nint Datatype(ScalarType type) => type switch
    {
        ScalarType.Float32 => _mpi.Float,
        ScalarType.Float64 => _mpi.Double,
        ScalarType.Int32 => _mpi.Int,
        ScalarType.Int64 => _mpi.Int64,
        ScalarType.Byte => _mpi.Byte,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "Unsupported element type."),
    };
}
