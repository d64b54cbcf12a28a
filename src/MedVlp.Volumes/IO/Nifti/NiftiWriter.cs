using System.Buffers;
using System.Buffers.Binary;
using System.IO.Compression;
using System.Runtime.InteropServices;
using System.Text;
using MathNet.Numerics.LinearAlgebra;

namespace MedVlp.Volumes.IO.Nifti;

/// <summary>
/// Writes volumes as NIfTI-1 or NIfTI-2: <c>.nii</c>, <c>.nii.gz</c> or a <c>.hdr</c>/<c>.img</c> pair, little-endian.
/// </summary>
/// <remarks>
/// The affine is stored twice, as nibabel stores it: exactly in the sform rows, and as the closest rigid
/// transform in the qform (quaternion, <c>qfac</c> = <c>pixdim[0]</c>, offsets; nibabel's <c>set_qform</c> with
/// <c>mat2quat</c>). <c>pixdim[1..3]</c> are the column lengths of the affine, <c>xyzt_units</c> is millimetres.
/// Frames (the dimensions beyond k) are written as dims 4..7.
/// </remarks>
public static class NiftiWriter
{
    private const int ChunkVoxels = 1 << 18;

    /// <summary>Writes <paramref name="volume"/> to <paramref name="path"/>.</summary>
    /// <param name="volume">The volume.</param>
    /// <param name="path">A <c>.nii</c>, <c>.nii.gz</c>, <c>.hdr</c> or <c>.img</c> path (a pair writes both files).</param>
    /// <param name="options">Writing options, or <see langword="null"/> for the defaults.</param>
    /// <param name="cancellationToken">Cancels a long write between chunks (a partial file is deleted).</param>
    /// <exception cref="ArgumentException">The path has no NIfTI suffix, or the volume cannot be stored as asked.</exception>
    public static void Write(Volume volume, string path, NiftiWriteOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(volume);
        ArgumentException.ThrowIfNullOrEmpty(path);
        options ??= NiftiWriteOptions.Default;
        var gz = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase);
        var stem = gz ? path[..^3] : path;
        var compress = options.Compress ?? gz;
        if (stem.EndsWith(".nii", StringComparison.OrdinalIgnoreCase))
        {
            WriteFile(path, compress, s => Write(volume, s, options, singleFile: true, header: true, data: true, cancellationToken), cancellationToken);
            return;
        }

        if (stem.EndsWith(".hdr", StringComparison.OrdinalIgnoreCase) || stem.EndsWith(".img", StringComparison.OrdinalIgnoreCase))
        {
            var bare = stem[..^4];
            var suffix = gz ? ".gz" : "";
            WriteFile(bare + ".hdr" + suffix, compress, s => Write(volume, s, options, singleFile: false, header: true, data: false, cancellationToken), cancellationToken);
            WriteFile(bare + ".img" + suffix, compress, s => Write(volume, s, options, singleFile: false, header: false, data: true, cancellationToken), cancellationToken);
            return;
        }

        throw new ArgumentException($"{path}: a NIfTI file name ends in .nii, .nii.gz, .hdr or .img.", nameof(path));
    }

    /// <summary>Writes <paramref name="volume"/> on the thread pool.</summary>
    public static Task WriteAsync(Volume volume, string path, NiftiWriteOptions? options = null, CancellationToken cancellationToken = default) =>
        Task.Run(() => Write(volume, path, options, cancellationToken), cancellationToken);

    /// <summary>Writes <paramref name="volume"/> as a single-file NIfTI (<c>.nii</c> bytes; gzip when <see cref="NiftiWriteOptions.Compress"/> is true).</summary>
    /// <param name="volume">The volume.</param>
    /// <param name="stream">A writable stream; it is left open.</param>
    /// <param name="options">Writing options, or <see langword="null"/> for the defaults.</param>
    /// <param name="cancellationToken">Cancels a long write between chunks.</param>
    public static void Write(Volume volume, Stream stream, NiftiWriteOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(volume);
        ArgumentNullException.ThrowIfNull(stream);
        options ??= NiftiWriteOptions.Default;
        if (options.Compress == true)
        {
            using var gz = new GZipStream(stream, CompressionLevel.Fastest, leaveOpen: true);
            Write(volume, gz, options, singleFile: true, header: true, data: true, cancellationToken);
        }
        else
        {
            Write(volume, stream, options, singleFile: true, header: true, data: true, cancellationToken);
        }
    }

    private static void WriteFile(string path, bool compress, Action<Stream> body, CancellationToken cancellationToken)
    {
        var ok = false;
        try
        {
            using (var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16))
            {
                if (compress)
                {
                    using var gz = new GZipStream(file, CompressionLevel.Fastest, leaveOpen: true);
                    body(gz);
                }
                else
                {
                    body(file);
                }
            }

            ok = true;
        }
        finally
        {
            if (!ok && cancellationToken.IsCancellationRequested)
            {
                File.Delete(path);
            }
        }
    }

    private static void Write(Volume volume, Stream stream, NiftiWriteOptions options, bool singleFile, bool header, bool data, CancellationToken cancellationToken)
    {
        var (type, slope, inter) = StorageOf(volume, options);
        var version = VersionOf(volume, options);
        if (header)
        {
            stream.Write(BuildHeader(volume, options, version, singleFile, type, slope, inter));
        }

        if (data)
        {
            WriteVoxels(volume.Data.Span, stream, type, slope, inter, cancellationToken);
        }
    }

    private static (VoxelDataType Type, double Slope, double Inter) StorageOf(Volume volume, NiftiWriteOptions options)
    {
        if (options.StorageType == NiftiStorageType.Float32 || volume.Metadata.SourceDataType == VoxelDataType.Unknown)
        {
            return (VoxelDataType.Float32, 1, 0);
        }

        var slope = volume.Metadata.ScaleSlope;
        var inter = volume.Metadata.ScaleIntercept;
        if (slope == 0 || !double.IsFinite(slope) || !double.IsFinite(inter))
        {
            throw new ArgumentException($"The volume's scaling (slope {slope}, intercept {inter}) cannot be stored; write it as float32.", nameof(volume));
        }

        return (volume.Metadata.SourceDataType, slope, inter);
    }

    private static int VersionOf(Volume volume, NiftiWriteOptions options)
    {
        if (volume.FrameShape.Count > 4)
        {
            throw new ArgumentException($"NIfTI holds at most 7 dimensions; the volume has {3 + volume.FrameShape.Count}.", nameof(volume));
        }

        var needs2 = new[] { volume.Shape.X, volume.Shape.Y, volume.Shape.Z }.Concat(volume.FrameShape).Any(e => e > short.MaxValue);
        return options.Version switch
        {
            null => needs2 ? 2 : 1,
            1 when needs2 => throw new ArgumentException("An extent exceeds 32767, which NIfTI-1 cannot store; write NIfTI-2.", nameof(options)),
            1 or 2 => options.Version.Value,
            _ => throw new ArgumentException($"NIfTI version {options.Version} does not exist; use 1 or 2.", nameof(options)),
        };
    }

    /// <summary>The header bytes including the 4-byte extension flag (352 for NIfTI-1, 544 for NIfTI-2).</summary>
    internal static byte[] BuildHeader(Volume volume, NiftiWriteOptions options, int version, bool singleFile, VoxelDataType type, double slope, double inter)
    {
        var dims = new long[8];
        dims[0] = 3 + volume.FrameShape.Count;
        dims[1] = volume.Shape.X;
        dims[2] = volume.Shape.Y;
        dims[3] = volume.Shape.Z;
        for (var n = 0; n < volume.FrameShape.Count; n++)
        {
            dims[4 + n] = volume.FrameShape[n];
        }

        for (var n = (int)dims[0] + 1; n < 8; n++)
        {
            dims[n] = 1;
        }

        var q = QformOf(volume.Affine);
        var pixdim = new double[8];
        pixdim[0] = q.Qfac;
        pixdim[1] = q.Zooms[0];
        pixdim[2] = q.Zooms[1];
        pixdim[3] = q.Zooms[2];
        for (var n = 4; n < 8; n++)
        {
            pixdim[n] = 1;
        }

        var code = options.XformCode;
        var qcode = q.Valid ? code : (short)0;
        var description = Ascii(options.Description ?? volume.Metadata.Description ?? "", 79);
        var datatype = DatatypeCode(type);
        var bitpix = (short)(type.SizeInBytes() * 8);
        var srow = volume.Affine.ToRowMajor();

        if (version == 1)
        {
            var h = new byte[NiftiHeader.Nifti1Size + 4];
            var s = h.AsSpan();
            BinaryPrimitives.WriteInt32LittleEndian(s, NiftiHeader.Nifti1Size);
            h[38] = (byte)'r';
            for (var n = 0; n < 8; n++)
            {
                BinaryPrimitives.WriteInt16LittleEndian(s[(40 + (2 * n))..], (short)dims[n]);
                BinaryPrimitives.WriteSingleLittleEndian(s[(76 + (4 * n))..], (float)pixdim[n]);
            }

            BinaryPrimitives.WriteInt16LittleEndian(s[70..], datatype);
            BinaryPrimitives.WriteInt16LittleEndian(s[72..], bitpix);
            BinaryPrimitives.WriteSingleLittleEndian(s[108..], singleFile ? NiftiHeader.Nifti1Size + 4 : 0);
            BinaryPrimitives.WriteSingleLittleEndian(s[112..], (float)slope);
            BinaryPrimitives.WriteSingleLittleEndian(s[116..], (float)inter);
            h[123] = 2; // NIFTI_UNITS_MM
            description.CopyTo(s[148..]);
            BinaryPrimitives.WriteInt16LittleEndian(s[252..], qcode);
            BinaryPrimitives.WriteInt16LittleEndian(s[254..], code);
            BinaryPrimitives.WriteSingleLittleEndian(s[256..], (float)q.B);
            BinaryPrimitives.WriteSingleLittleEndian(s[260..], (float)q.C);
            BinaryPrimitives.WriteSingleLittleEndian(s[264..], (float)q.D);
            BinaryPrimitives.WriteSingleLittleEndian(s[268..], (float)srow[3]);
            BinaryPrimitives.WriteSingleLittleEndian(s[272..], (float)srow[7]);
            BinaryPrimitives.WriteSingleLittleEndian(s[276..], (float)srow[11]);
            for (var n = 0; n < 12; n++)
            {
                BinaryPrimitives.WriteSingleLittleEndian(s[(280 + (4 * n))..], (float)srow[n]);
            }

            (singleFile ? "n+1\0"u8 : "ni1\0"u8).CopyTo(s[344..]);
            return h;
        }
        else
        {
            var h = new byte[NiftiHeader.Nifti2Size + 4];
            var s = h.AsSpan();
            BinaryPrimitives.WriteInt32LittleEndian(s, NiftiHeader.Nifti2Size);
            (singleFile ? "n+2\0\r\n\u001a\n"u8 : "ni2\0\r\n\u001a\n"u8).CopyTo(s[4..]);
            BinaryPrimitives.WriteInt16LittleEndian(s[12..], datatype);
            BinaryPrimitives.WriteInt16LittleEndian(s[14..], bitpix);
            for (var n = 0; n < 8; n++)
            {
                BinaryPrimitives.WriteInt64LittleEndian(s[(16 + (8 * n))..], dims[n]);
                BinaryPrimitives.WriteDoubleLittleEndian(s[(104 + (8 * n))..], pixdim[n]);
            }

            BinaryPrimitives.WriteInt64LittleEndian(s[168..], singleFile ? NiftiHeader.Nifti2Size + 4 : 0);
            BinaryPrimitives.WriteDoubleLittleEndian(s[176..], slope);
            BinaryPrimitives.WriteDoubleLittleEndian(s[184..], inter);
            description.CopyTo(s[240..]);
            BinaryPrimitives.WriteInt32LittleEndian(s[344..], qcode);
            BinaryPrimitives.WriteInt32LittleEndian(s[348..], code);
            BinaryPrimitives.WriteDoubleLittleEndian(s[352..], q.B);
            BinaryPrimitives.WriteDoubleLittleEndian(s[360..], q.C);
            BinaryPrimitives.WriteDoubleLittleEndian(s[368..], q.D);
            BinaryPrimitives.WriteDoubleLittleEndian(s[376..], srow[3]);
            BinaryPrimitives.WriteDoubleLittleEndian(s[384..], srow[7]);
            BinaryPrimitives.WriteDoubleLittleEndian(s[392..], srow[11]);
            for (var n = 0; n < 12; n++)
            {
                BinaryPrimitives.WriteDoubleLittleEndian(s[(400 + (8 * n))..], srow[n]);
            }

            BinaryPrimitives.WriteInt32LittleEndian(s[500..], 2); // NIFTI_UNITS_MM
            return h;
        }
    }

    /// <summary>
    /// nibabel's <c>Nifti1Header.set_qform</c> (with <c>strip_shears</c>): zooms = column lengths, qfac = sign of
    /// det(R), the closest rotation by polar decomposition, and its quaternion by <c>mat2quat</c> (w &gt;= 0).
    /// </summary>
    internal static (double B, double C, double D, double Qfac, double[] Zooms, bool Valid) QformOf(Affine affine)
    {
        var rzs = Matrix<double>.Build.Dense(3, 3, (r, c) => affine[r, c]);
        var zooms = new double[3];
        for (var c = 0; c < 3; c++)
        {
            zooms[c] = rzs.Column(c).L2Norm();
        }

        if (zooms.Any(z => z == 0))
        {
            return (0, 0, 0, 1, zooms, false);
        }

        var rot = Matrix<double>.Build.Dense(3, 3, (r, c) => rzs[r, c] / zooms[c]);
        var qfac = 1.0;
        if (rot.Determinant() <= 0)
        {
            qfac = -1;
            rot.SetColumn(2, rot.Column(2) * -1);
        }

        var svd = rot.Svd(true);
        var pr = svd.U * svd.VT;
        double qxx = pr[0, 0], qyx = pr[0, 1], qzx = pr[0, 2];
        double qxy = pr[1, 0], qyy = pr[1, 1], qzy = pr[1, 2];
        double qxz = pr[2, 0], qyz = pr[2, 1], qzz = pr[2, 2];
        var k = Matrix<double>.Build.DenseOfArray(new double[,]
        {
            { qxx - qyy - qzz, qyx + qxy, qzx + qxz, qyz - qzy },
            { qyx + qxy, qyy - qxx - qzz, qzy + qyz, qzx - qxz },
            { qzx + qxz, qzy + qyz, qzz - qxx - qyy, qxy - qyx },
            { qyz - qzy, qzx - qxz, qxy - qyx, qxx + qyy + qzz },
        }) / 3.0;
        var evd = k.Evd(Symmetricity.Symmetric);
        var values = evd.EigenValues.Select(v => v.Real).ToArray();
        var best = Array.IndexOf(values, values.Max());
        var vec = evd.EigenVectors.Column(best);
        double w = vec[3], x = vec[0], y = vec[1], z = vec[2];
        if (w < 0)
        {
            x = -x;
            y = -y;
            z = -z;
        }

        return (x, y, z, qfac, zooms, true);
    }

    private static void WriteVoxels(ReadOnlySpan<float> values, Stream stream, VoxelDataType type, double slope, double inter, CancellationToken cancellationToken)
    {
        var size = type.SizeInBytes();
        var buffer = ArrayPool<byte>.Shared.Rent(ChunkVoxels * size);
        try
        {
            for (var start = 0; start < values.Length; start += ChunkVoxels)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var chunk = values.Slice(start, Math.Min(ChunkVoxels, values.Length - start));
                var bytes = buffer.AsSpan(0, chunk.Length * size);
                Encode(chunk, bytes, type, slope, inter, start);
                stream.Write(bytes);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static void Encode(ReadOnlySpan<float> src, Span<byte> dst, VoxelDataType type, double slope, double inter, long offset)
    {
        switch (type)
        {
            case VoxelDataType.Float32:
                MemoryMarshal.AsBytes(src).CopyTo(dst);
                if (!BitConverter.IsLittleEndian)
                {
                    var i32 = MemoryMarshal.Cast<byte, int>(dst);
                    BinaryPrimitives.ReverseEndianness(i32, i32);
                }

                return;
            case VoxelDataType.Float64:
                for (var n = 0; n < src.Length; n++)
                {
                    BinaryPrimitives.WriteDoubleLittleEndian(dst[(n * 8)..], (src[n] - inter) / slope);
                }

                return;
            default:
                break;
        }

        var (min, max) = Range(type);
        var size = type.SizeInBytes();
        for (var n = 0; n < src.Length; n++)
        {
            var stored = Math.Round((src[n] - inter) / slope, MidpointRounding.ToEven);
            if (!(stored >= min && stored <= max))
            {
                throw new ArgumentException(
                    $"Voxel {offset + n} is {src[n]}, which is {stored} in {type.ToNumPyName()} (slope {slope}, intercept {inter}); the type holds {min}..{max}. Write the volume as float32.");
            }

            var d = dst[(n * size)..];
            switch (type)
            {
                case VoxelDataType.UInt8: d[0] = (byte)stored; break;
                case VoxelDataType.Int8: d[0] = (byte)(sbyte)stored; break;
                case VoxelDataType.Int16: BinaryPrimitives.WriteInt16LittleEndian(d, (short)stored); break;
                case VoxelDataType.UInt16: BinaryPrimitives.WriteUInt16LittleEndian(d, (ushort)stored); break;
                case VoxelDataType.Int32: BinaryPrimitives.WriteInt32LittleEndian(d, (int)stored); break;
                case VoxelDataType.UInt32: BinaryPrimitives.WriteUInt32LittleEndian(d, (uint)stored); break;
                case VoxelDataType.Int64: BinaryPrimitives.WriteInt64LittleEndian(d, (long)stored); break;
                case VoxelDataType.UInt64: BinaryPrimitives.WriteUInt64LittleEndian(d, (ulong)stored); break;
                default: throw new ArgumentOutOfRangeException(nameof(type), type, "No NIfTI encoding.");
            }
        }
    }

    private static (double Min, double Max) Range(VoxelDataType type) => type switch
    {
        VoxelDataType.UInt8 => (byte.MinValue, byte.MaxValue),
        VoxelDataType.Int8 => (sbyte.MinValue, sbyte.MaxValue),
        VoxelDataType.Int16 => (short.MinValue, short.MaxValue),
        VoxelDataType.UInt16 => (ushort.MinValue, ushort.MaxValue),
        VoxelDataType.Int32 => (int.MinValue, int.MaxValue),
        VoxelDataType.UInt32 => (uint.MinValue, uint.MaxValue),
        // doubles cannot hold the 64-bit extremes exactly; stay strictly inside them
        VoxelDataType.Int64 => (-9.2233720368547748E+18, 9.2233720368547748E+18 - 2048),
        VoxelDataType.UInt64 => (0, 1.8446744073709552E+19 - 4096),
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "No integer range."),
    };

    private static short DatatypeCode(VoxelDataType type) => type switch
    {
        VoxelDataType.UInt8 => 2,
        VoxelDataType.Int16 => 4,
        VoxelDataType.Int32 => 8,
        VoxelDataType.Float32 => 16,
        VoxelDataType.Float64 => 64,
        VoxelDataType.Int8 => 256,
        VoxelDataType.UInt16 => 512,
        VoxelDataType.UInt32 => 768,
        VoxelDataType.Int64 => 1024,
        VoxelDataType.UInt64 => 1280,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "No NIfTI datatype code."),
    };

    private static byte[] Ascii(string text, int max)
    {
        var bytes = Encoding.ASCII.GetBytes(text);
        return bytes.Length > max ? bytes[..max] : bytes;
    }
}
