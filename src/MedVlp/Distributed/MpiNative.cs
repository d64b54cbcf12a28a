using System.Runtime.InteropServices;

namespace MedVlp.Distributed;

/// <summary>
/// A thin binding of the few MPI calls data-parallel training needs, to Open MPI's <c>libmpi.so.40</c> (Debian's
/// <c>libopenmpi3</c>, Open MPI 4.x). Open MPI's handles are pointers: <c>MPI_COMM_WORLD</c> is the address of the
/// exported global <c>ompi_mpi_comm_world</c>, <c>MPI_FLOAT</c> of <c>ompi_mpi_float</c>, <c>MPI_SUM</c> of
/// <c>ompi_mpi_op_sum</c>; they are read with <see cref="NativeLibrary.GetExport"/>. Functions are called through
/// unmanaged function pointers resolved once. Other MPI implementations (MPICH's integer handles) are not supported.
/// </summary>
internal static unsafe class MpiNative
{
    /// <summary>The library file name: Open MPI 4.x's ABI (Debian bookworm's <c>libopenmpi3</c>).</summary>
    public const string LibraryName = "libmpi.so.40";

    public const int Success = 0;
    public const int ThreadSingle = 0, ThreadFunneled = 1, ThreadSerialized = 2, ThreadMultiple = 3;
    public const int MaxErrorString = 256;

    /// <summary><c>MPI_IN_PLACE</c> in Open MPI is <c>(void*)1</c>.</summary>
    public static readonly nint InPlace = 1;

    private static readonly Lock LoadLock = new();
    private static Api? api;

    /// <summary>Resolved entry points and handles.</summary>
    public sealed class Api
    {
        public required nint Library { get; init; }
        public required delegate* unmanaged<int*, nint*, int> Initialized { get; init; }
        public required delegate* unmanaged<int*, nint*, int> Finalized { get; init; }
        public required delegate* unmanaged<int*, nint*, int, int*, int> InitThread { get; init; }
        public required delegate* unmanaged<int> Finalize { get; init; }
        public required delegate* unmanaged<nint, int*, int> CommRank { get; init; }
        public required delegate* unmanaged<nint, int*, int> CommSize { get; init; }
        public required delegate* unmanaged<nint, nint, int, nint, nint, nint, int> Allreduce { get; init; }
        public required delegate* unmanaged<nint, int, nint, nint, int, nint, nint, int> Allgather { get; init; }
        public required delegate* unmanaged<nint, int, nint, nint, int*, int*, nint, nint, int> Allgatherv { get; init; }
        public required delegate* unmanaged<nint, int, nint, int, nint, int> Bcast { get; init; }
        public required delegate* unmanaged<nint, int> Barrier { get; init; }
        public required delegate* unmanaged<nint, int, int> Abort { get; init; }
        public required delegate* unmanaged<nint, nint, int> CommSetErrhandler { get; init; }
        public required delegate* unmanaged<int, byte*, int*, int> ErrorString { get; init; }
        public required delegate* unmanaged<int*, int*, int> GetVersion { get; init; }

        public required nint CommWorld { get; init; }
        public required nint ErrorsReturn { get; init; }
        public required nint Float { get; init; }
        public required nint Double { get; init; }
        public required nint Int { get; init; }
        public required nint Int64 { get; init; }
        public required nint Byte { get; init; }
        public required nint OpSum { get; init; }
        public required nint OpMax { get; init; }
        public required nint OpMin { get; init; }
    }

    /// <summary>Loads <c>libmpi.so.40</c> and resolves every symbol, or throws a <see cref="DllNotFoundException"/>
    /// that says which package provides it.</summary>
    public static Api Load()
    {
        lock (LoadLock)
        {
            if (api is not null)
            {
                return api;
            }

            if (!NativeLibrary.TryLoad(LibraryName, typeof(MpiNative).Assembly, DllImportSearchPath.SafeDirectories | DllImportSearchPath.AssemblyDirectory, out var library))
            {
                throw new DllNotFoundException(
                    $"{LibraryName} (Open MPI 4.x) was not found. On Debian/Ubuntu install it with 'apt-get install openmpi-bin libopenmpi3' " +
                    "(mpirun comes from openmpi-bin).");
            }

            api = new Api
            {
                Library = library,
                Initialized = (delegate* unmanaged<int*, nint*, int>)Export(library, "MPI_Initialized"),
                Finalized = (delegate* unmanaged<int*, nint*, int>)Export(library, "MPI_Finalized"),
                InitThread = (delegate* unmanaged<int*, nint*, int, int*, int>)Export(library, "MPI_Init_thread"),
                Finalize = (delegate* unmanaged<int>)Export(library, "MPI_Finalize"),
                CommRank = (delegate* unmanaged<nint, int*, int>)Export(library, "MPI_Comm_rank"),
                CommSize = (delegate* unmanaged<nint, int*, int>)Export(library, "MPI_Comm_size"),
                Allreduce = (delegate* unmanaged<nint, nint, int, nint, nint, nint, int>)Export(library, "MPI_Allreduce"),
                Allgather = (delegate* unmanaged<nint, int, nint, nint, int, nint, nint, int>)Export(library, "MPI_Allgather"),
                Allgatherv = (delegate* unmanaged<nint, int, nint, nint, int*, int*, nint, nint, int>)Export(library, "MPI_Allgatherv"),
                Bcast = (delegate* unmanaged<nint, int, nint, int, nint, int>)Export(library, "MPI_Bcast"),
                Barrier = (delegate* unmanaged<nint, int>)Export(library, "MPI_Barrier"),
                Abort = (delegate* unmanaged<nint, int, int>)Export(library, "MPI_Abort"),
                CommSetErrhandler = (delegate* unmanaged<nint, nint, int>)Export(library, "MPI_Comm_set_errhandler"),
                ErrorString = (delegate* unmanaged<int, byte*, int*, int>)Export(library, "MPI_Error_string"),
                GetVersion = (delegate* unmanaged<int*, int*, int>)Export(library, "MPI_Get_version"),
                CommWorld = Export(library, "ompi_mpi_comm_world"),
                ErrorsReturn = Export(library, "ompi_mpi_errors_return"),
                Float = Export(library, "ompi_mpi_float"),
                Double = Export(library, "ompi_mpi_double"),
                Int = Export(library, "ompi_mpi_int"),
                Int64 = Export(library, "ompi_mpi_int64_t"),
                Byte = Export(library, "ompi_mpi_byte"),
                OpSum = Export(library, "ompi_mpi_op_sum"),
                OpMax = Export(library, "ompi_mpi_op_max"),
                OpMin = Export(library, "ompi_mpi_op_min"),
            };
            return api;
        }
    }

    /// <summary>Throws an <see cref="MpiException"/> naming the call when <paramref name="code"/> is not MPI_SUCCESS.</summary>
    public static void Check(Api mpi, int code, string call)
    {
        if (code == Success)
        {
            return;
        }

        var buffer = stackalloc byte[MaxErrorString + 1];
        var length = 0;
        var message = mpi.ErrorString(code, buffer, &length) == Success && length > 0
            ? Marshal.PtrToStringUTF8((nint)buffer, Math.Min(length, MaxErrorString))
            : "unknown error";
        throw new MpiException(call, code, message);
    }

    private static nint Export(nint library, string name) =>
        NativeLibrary.TryGetExport(library, name, out var address)
            ? address
            : throw new EntryPointNotFoundException($"{LibraryName} has no export '{name}': MedVlp's MPI binding needs Open MPI 4.x.");
}

/// <summary>An MPI call returned an error code.</summary>
public sealed class MpiException : Exception
{
    /// <summary>Creates the exception.</summary>
    public MpiException()
    {
        Call = string.Empty;
    }

    /// <summary>Creates the exception with a message.</summary>
    public MpiException(string message)
        : base(message)
    {
        Call = string.Empty;
    }

    /// <summary>Creates the exception with a message and an inner exception.</summary>
    public MpiException(string message, Exception innerException)
        : base(message, innerException)
    {
        Call = string.Empty;
    }

    /// <summary>Creates the exception for a failed call.</summary>
    /// <param name="call">The MPI function (for example <c>MPI_Allreduce</c>).</param>
    /// <param name="errorCode">Its return code.</param>
    /// <param name="errorText">MPI's text for the code.</param>
    public MpiException(string call, int errorCode, string? errorText)
        : base($"{call} failed with MPI error {errorCode}: {errorText}")
    {
        Call = call;
        ErrorCode = errorCode;
    }

    /// <summary>The MPI function that failed.</summary>
    public string Call { get; }

    /// <summary>The MPI error code.</summary>
    public int ErrorCode { get; }
}
