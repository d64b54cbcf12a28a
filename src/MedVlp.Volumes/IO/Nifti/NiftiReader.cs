using System.Globalization;
using System.IO.Compression;

namespace MedVlp.Volumes.IO.Nifti;

/// <summary>Reads NIfTI-1 and NIfTI-2 volumes: <c>.nii</c>, <c>.nii.gz</c> and <c>.hdr</c>/<c>.img</c> pairs, either byte order.</summary>
/// <remarks>The affine follows nibabel: sform when <c>sform_code</c> &gt; 0, else qform when <c>qform_code</c> &gt; 0, else the Analyze default.</remarks>
public static class NiftiReader
{
    /// <summary>The largest ratio of uncompressed to compressed size that deflate can reach.</summary>
    internal const long MaxDeflateRatio = 1032;

    /// <summary>True when the path has a NIfTI suffix (<c>.nii</c>, <c>.nii.gz</c>, <c>.hdr</c>, <c>.img</c>, with optional <c>.gz</c>).</summary>
    public static bool HasNiftiExtension(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var p = StripGz(path);
        return p.EndsWith(".nii", StringComparison.OrdinalIgnoreCase)
            || p.EndsWith(".hdr", StringComparison.OrdinalIgnoreCase)
            || p.EndsWith(".img", StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>Reads only the header.</summary>
    /// <exception cref="VolumeFormatException">The file is not a valid NIfTI file.</exception>
    public static NiftiHeader ReadHeader(string path)
    {
        var headerPath = HeaderPathFor(path);
        using var stream = OpenMaybeGzip(headerPath, out _);
        return ReadHeader(stream, headerPath, IsSingleFileName(headerPath));
    }

    /// <summary>Reads a volume with all its frames.</summary>
    /// <param name="path">A <c>.nii</c>, <c>.nii.gz</c>, <c>.hdr</c> or <c>.img</c> path.</param>
    /// <param name="options">Reading options, or <see langword="null"/> for the defaults.</param>
    /// <param name="cancellationToken">Cancels a long read between chunks.</param>
    /// <exception cref="FileNotFoundException">The file (or the pair's other half) does not exist.</exception>
    /// <exception cref="VolumeFormatException">The file is not a valid NIfTI file, or is truncated.</exception>
    public static Volume Read(string path, VolumeReadOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= VolumeReadOptions.Default;
        var headerPath = HeaderPathFor(path);
        using var headerStream = OpenMaybeGzip(headerPath, out var headerCompressedLength);
        var header = ReadHeader(headerStream, headerPath, IsSingleFileName(headerPath));
        var type = header.GetDataType(headerPath);

        long nx = header.Rank >= 1 ? header.Dim[1] : 1, ny = header.Rank >= 2 ? header.Dim[2] : 1, nz = header.Rank >= 3 ? header.Dim[3] : 1;
        var frameShape = new List<int>();
        long frames = 1;
        for (var n = 4; n <= header.Rank; n++)
        {
            frameShape.Add(CheckedExtent(header.Dim[n], headerPath, n));
            frames = SaturatingMultiply(frames, header.Dim[n]);
        }

        var spatial = SaturatingMultiply(SaturatingMultiply(nx, ny), nz);
        var total = SaturatingMultiply(spatial, frames);
        var toRead = options.FirstFrameOnly ? spatial : total;
        if (spatial > int.MaxValue || toRead > options.MaxVoxels || toRead > Array.MaxLength)
        {
            throw new VolumeFormatException(headerPath, "dim", $"asks for {nx}x{ny}x{nz} voxels x {frames} frame(s) = {total} voxels; the limit is {options.MaxVoxels} (ResourceLimits.MaxVoxels; CLI --max-voxels).");
        }

        var dataBytes = SaturatingMultiply(total, type.SizeInBytes());
        Stream dataStream;
        string dataPath;
        long compressedLength;
        if (header.IsSingleFile)
        {
            dataStream = headerStream;
            dataPath = headerPath;
            compressedLength = headerCompressedLength;
        }
        else
        {
            dataPath = ImagePathFor(headerPath);
            dataStream = OpenMaybeGzip(dataPath, out compressedLength);
        }

        try
        {
            CheckLengthPlausible(dataPath, dataStream, compressedLength, SaturatingAdd(header.VoxOffset, options.FirstFrameOnly ? SaturatingMultiply(toRead, type.SizeInBytes()) : dataBytes), options.MaxDecompressedBytes);
            var alreadyRead = header.IsSingleFile ? (header.Version == 1 ? NiftiHeader.Nifti1Size : NiftiHeader.Nifti2Size) : 0;
            Skip(dataStream, header.VoxOffset - alreadyRead, dataPath);

            var data = VoxelBuffer.Allocate(checked((int)toRead));
            double slope = header.SclSlope, inter = header.SclInter;
            if (slope == 0 || !double.IsFinite(slope))
            {
                slope = 1;
                inter = 0;
            }
            else if (!double.IsFinite(inter))
            {
                throw new VolumeFormatException(headerPath, "scl_inter", $"is {inter} while scl_slope is {slope}; expected a finite intercept.");
            }

            VoxelDecoder.ReadInto(dataStream, data, type, header.IsBigEndian, slope, inter, dataPath, cancellationToken);
            Affine affine;
            try
            {
                affine = header.GetBestAffine();
            }
            catch (ArgumentException ex)
            {
                var which = header.SformCode > 0 ? "srow_x/y/z" : header.QformCode > 0 ? "quatern/qoffset/pixdim" : "pixdim";
                throw new VolumeFormatException(headerPath, which, "the affine it defines contains non-finite numbers.", ex);
            }

            return new Volume(
                data,
                new VolumeShape((int)nx, (int)ny, (int)nz),
                affine,
                options.FirstFrameOnly ? [] : frameShape,
                SpacingOf(header, affine),
                new VolumeMetadata
                {
                    SourcePath = path,
                    Format = header.Version == 1 ? "nifti1" : "nifti2",
                    SourceDataType = type,
                    ScaleSlope = slope,
                    ScaleIntercept = inter,
                    Description = header.Description,
                    Properties = new Dictionary<string, string>
                    {
                        ["qform_code"] = header.QformCode.ToString(CultureInfo.InvariantCulture),
                        ["sform_code"] = header.SformCode.ToString(CultureInfo.InvariantCulture),
                        ["byte_order"] = header.IsBigEndian ? "big" : "little",
                        ["xyzt_units"] = header.XyztUnits.ToString(CultureInfo.InvariantCulture),
                        ["intent_code"] = header.IntentCode.ToString(CultureInfo.InvariantCulture),
                    },
                });
        }
        catch (InvalidDataException ex)
        {
            throw new VolumeFormatException(dataPath, "gzip", $"the compressed data are corrupt: {ex.Message}", ex);
        }
        finally
        {
            if (!header.IsSingleFile)
            {
                dataStream.Dispose();
            }
        }
    }

    /// <summary>Reads a volume on the thread pool.</summary>
    public static Task<Volume> ReadAsync(string path, VolumeReadOptions? options = null, CancellationToken cancellationToken = default) =>
        Task.Run(() => Read(path, options, cancellationToken), cancellationToken);

    internal static NiftiHeader ReadHeader(Stream stream, string path, bool? singleFileExpected)
    {
        var buffer = new byte[NiftiHeader.Nifti2Size];
        int got;
        try
        {
            got = stream.ReadAtLeast(buffer.AsSpan(0, 4), 4, throwOnEndOfStream: false);
            if (got < 4)
            {
                throw new VolumeFormatException(path, "header", $"the file holds {got} bytes; a NIfTI header needs 348 or 540.");
            }

            var (version, _) = NiftiHeader.DetectVersion(buffer, path);
            var size = version == 1 ? NiftiHeader.Nifti1Size : NiftiHeader.Nifti2Size;
            got += stream.ReadAtLeast(buffer.AsSpan(4, size - 4), size - 4, throwOnEndOfStream: false);
            return NiftiHeader.Parse(buffer.AsSpan(0, got), path, singleFileExpected);
        }
        catch (InvalidDataException ex)
        {
            throw new VolumeFormatException(path, "gzip", $"the file is not valid gzip data: {ex.Message}", ex);
        }
    }

    private static Spacing SpacingOf(NiftiHeader header, Affine affine)
    {
        var zooms = affine.Zooms;
        double Pick(int n, double fallback)
        {
            if (n > header.Rank)
            {
                return 1;
            }

            var v = Math.Abs(header.PixDim[n]);
            return double.IsFinite(v) && v > 0 ? v : fallback;
        }

        return new Spacing(Pick(1, zooms.X), Pick(2, zooms.Y), Pick(3, zooms.Z));
    }

    private static int CheckedExtent(long extent, string path, int n) =>
        extent is >= 1 and <= int.MaxValue ? (int)extent : throw new VolumeFormatException(path, $"dim[{n}]", $"is {extent}; expected 1 to {int.MaxValue}.");

    private static long SaturatingAdd(long a, long b) => a > long.MaxValue - b ? long.MaxValue : a + b;

    private static long SaturatingMultiply(long a, long b) =>
        a == 0 || b == 0 ? 0 : a > long.MaxValue / b ? long.MaxValue : a * b;

    private static void CheckLengthPlausible(string path, Stream stream, long compressedLength, long neededBytes, long maxDecompressedBytes)
    {
        if (stream is GZipStream)
        {
            if (neededBytes > compressedLength * MaxDeflateRatio)
            {
                throw new VolumeFormatException(path, "dim", $"the header needs {neededBytes} bytes of data, more than a {compressedLength}-byte gzip file can hold (deflate expands at most {MaxDeflateRatio}x); the header is wrong or the file is truncated.");
            }

            if (neededBytes > maxDecompressedBytes)
            {
                throw new VolumeFormatException(path, "vox_offset/dim", $"{neededBytes} bytes (vox_offset + voxels) would be decompressed; the limit is {maxDecompressedBytes} (ResourceLimits.MaxDecompressedBytes).");
            }
        }
        else if (neededBytes > compressedLength)
        {
            throw new VolumeFormatException(path, "voxel data", $"truncated: the header needs {neededBytes} bytes (vox_offset + voxels), the file has {compressedLength}.");
        }
    }

    private static void Skip(Stream stream, long count, string path)
    {
        if (count <= 0)
        {
            return;
        }

        if (stream.CanSeek)
        {
            stream.Seek(count, SeekOrigin.Current);
            return;
        }

        Span<byte> scratch = stackalloc byte[4096];
        while (count > 0)
        {
            var n = stream.Read(scratch[..(int)Math.Min(scratch.Length, count)]);
            if (n == 0)
            {
                throw new VolumeFormatException(path, "vox_offset", "truncated: the file ends before the voxel data begin.");
            }

            count -= n;
        }
    }

    private static Stream OpenMaybeGzip(string path, out long fileLength)
    {
        var file = SafeFile.OpenRead(path);
        fileLength = file.Length;
        Span<byte> magic = stackalloc byte[2];
        var got = file.ReadAtLeast(magic, 2, throwOnEndOfStream: false);
        file.Position = 0;
        if (got == 2 && magic[0] == 0x1f && magic[1] == 0x8b)
        {
            return new GZipStream(file, CompressionMode.Decompress, leaveOpen: false);
        }

        return file;
    }

    private static bool? IsSingleFileName(string path)
    {
        var p = StripGz(path);
        if (p.EndsWith(".nii", StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }

        return p.EndsWith(".hdr", StringComparison.OrdinalIgnoreCase) ? false : null;
    }

    private static string HeaderPathFor(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var p = StripGz(path);
        if (p.EndsWith(".img", StringComparison.OrdinalIgnoreCase))
        {
            var stem = p[..^4];
            foreach (var candidate in new[] { stem + ".hdr", stem + ".hdr.gz", stem + ".HDR" })
            {
                if (File.Exists(candidate))
                {
                    return candidate;
                }
            }

            throw new FileNotFoundException($"{path}: the header {stem}.hdr of this .img file does not exist.", stem + ".hdr");
        }

        return path;
    }

    private static string ImagePathFor(string headerPath)
    {
        var p = StripGz(headerPath);
        var stem = p.EndsWith(".hdr", StringComparison.OrdinalIgnoreCase) ? p[..^4] : p;
        foreach (var candidate in new[] { stem + ".img", stem + ".img.gz", stem + ".IMG" })
        {
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new VolumeFormatException(headerPath, "magic", $"the header is one half of a .hdr/.img pair, and its voxel file {Path.GetFileName(stem)}.img (or .img.gz) does not exist next to it; copy {stem}.img beside the header.");
    }

    private static string StripGz(string path) =>
        path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? path[..^3] : path;
}
