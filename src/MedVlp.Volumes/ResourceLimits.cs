using System.Globalization;

namespace MedVlp.Volumes;

/// <summary>
/// The resource budget for untrusted inputs, in one place: how many voxels a reader may allocate for one volume, how
/// many bytes it may decompress, and how many voxels a preprocessing step may produce. Inputs that ask for more are
/// refused with a <see cref="VolumeFormatException"/> before anything that large is allocated.
/// </summary>
/// <remarks>
/// <para>The defaults keep one volume's buffer at or below 1 GiB of float32 voxels (2^28 voxels: 640^3, or
/// 512 x 512 x 1024), which a 24 GiB machine survives with room for preprocessing and a model; raise them for larger
/// scans. <see cref="Default"/> is process-wide (the <c>medvlp</c> CLI sets it from <c>--max-voxels</c>);
/// <see cref="IO.VolumeReadOptions.Limits"/> overrides it for one read.</para>
/// </remarks>
public sealed record ResourceLimits
{
    /// <summary>The default of <see cref="MaxVoxels"/> and <see cref="MaxPreprocessedVoxels"/>: 2^28 voxels (1 GiB as float32).</summary>
    public const long DefaultMaxVoxels = 1L << 28;

    /// <summary>The default of <see cref="MaxDecompressedBytes"/>: 2 GiB.</summary>
    public const long DefaultMaxDecompressedBytes = 1L << 31;

    private static ResourceLimits s_default = new();

    /// <summary>
    /// The limits used wherever no other limits are given (readers without <see cref="IO.VolumeReadOptions.Limits"/>,
    /// every preprocessing step). Set it once at start-up; it must satisfy <see cref="Validate"/>.
    /// </summary>
    public static ResourceLimits Default
    {
        get => Volatile.Read(ref s_default);
        set
        {
            ArgumentNullException.ThrowIfNull(value);
            value.Validate();
            Volatile.Write(ref s_default, value);
        }
    }

    /// <summary>The most values (voxels x components x frames) a reader allocates for one volume. Default 2^28.</summary>
    public long MaxVoxels { get; init; } = DefaultMaxVoxels;

    /// <summary>The most bytes a reader inflates from gzip/zlib/deflate data (header offsets included). Default 2 GiB.</summary>
    public long MaxDecompressedBytes { get; init; } = DefaultMaxDecompressedBytes;

    /// <summary>The most voxels (all frames) one preprocessing step may produce. Default 2^28.</summary>
    public long MaxPreprocessedVoxels { get; init; } = DefaultMaxVoxels;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> unless every limit is positive.</summary>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(MaxVoxels);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(MaxDecompressedBytes);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(MaxPreprocessedVoxels);
    }

    /// <summary>
    /// Throws <see cref="ArgumentException"/> unless a fixed output size of a transform (<paramref name="transform"/>)
    /// fits <see cref="MaxPreprocessedVoxels"/> of <see cref="Default"/>: a pipeline asking for more is refused when it
    /// is built or read, before any volume is allocated.
    /// </summary>
    internal static void CheckFixedSize(VolumeShape size, string transform)
    {
        size.Validate();
        var limit = Math.Min(Default.MaxPreprocessedVoxels, Array.MaxLength);
        if (size.VoxelCount > limit)
        {
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"{transform}: the size {size} = {size.VoxelCount} voxels is above the limit of {limit} (ResourceLimits.MaxPreprocessedVoxels; CLI --max-voxels)."));
        }
    }

    /// <summary>
    /// Throws unless a preprocessing step's output of <paramref name="x"/> x <paramref name="y"/> x <paramref name="z"/>
    /// voxels x <paramref name="frames"/> frames (computed without overflow) fits <see cref="MaxPreprocessedVoxels"/>
    /// and a .NET array.
    /// </summary>
    /// <exception cref="VolumeFormatException">It does not fit; the message names <paramref name="step"/>.</exception>
    internal void CheckPreprocessedSize(double x, double y, double z, long frames, string step, string? sourcePath)
    {
        var total = x * y * z * frames;
        var limit = Math.Min(MaxPreprocessedVoxels, Array.MaxLength);
        if (!(x >= 1 && y >= 1 && z >= 1) || x > int.MaxValue || y > int.MaxValue || z > int.MaxValue || !(total <= limit))
        {
            throw new VolumeFormatException(sourcePath, step, string.Create(CultureInfo.InvariantCulture,
                $"the output would be {x:G6} x {y:G6} x {z:G6} voxels x {frames} frame(s) = {total:G6} voxels; the limit is {limit} (ResourceLimits.MaxPreprocessedVoxels; CLI --max-voxels)."));
        }
    }
}
