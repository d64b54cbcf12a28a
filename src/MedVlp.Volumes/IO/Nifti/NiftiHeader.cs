using System.Buffers.Binary;
using System.Text;

namespace MedVlp.Volumes.IO.Nifti;

/// <summary>The fields of a NIfTI-1 or NIfTI-2 header that MedVlp uses, in a version-independent form.</summary>
public sealed class NiftiHeader
{
    internal const int Nifti1Size = 348;
    internal const int Nifti2Size = 540;

    /// <summary>1 for NIfTI-1, 2 for NIfTI-2.</summary>
    public int Version { get; init; }

    /// <summary>True for a single <c>.nii</c> file, false for a <c>.hdr</c>/<c>.img</c> pair.</summary>
    public bool IsSingleFile { get; init; }

    /// <summary>True when the file was written big-endian.</summary>
    public bool IsBigEndian { get; init; }

    /// <summary>The <c>dim</c> array: <c>dim[0]</c> is the number of dimensions, <c>dim[1..7]</c> the extents.</summary>
    public IReadOnlyList<long> Dim { get; init; } = [];

    /// <summary>The <c>pixdim</c> array: <c>pixdim[0]</c> is qfac, <c>pixdim[1..3]</c> the voxel sizes.</summary>
    public IReadOnlyList<double> PixDim { get; init; } = [];

    /// <summary>The NIfTI datatype code (2 = uint8, 4 = int16, 16 = float32, ...).</summary>
    public short DatatypeCode { get; init; }

    /// <summary>Bits per voxel as stated in the header.</summary>
    public short BitPix { get; init; }

    /// <summary>Byte offset of the voxel data in the data file.</summary>
    public long VoxOffset { get; init; }

    /// <summary>Data scaling slope; 0 or non-finite means no scaling.</summary>
    public double SclSlope { get; init; }

    /// <summary>Data scaling intercept.</summary>
    public double SclInter { get; init; }

    /// <summary>The qform code (0 = unknown, 1 = scanner, ...).</summary>
    public int QformCode { get; init; }

    /// <summary>The sform code (0 = unknown, 1 = scanner, ...).</summary>
    public int SformCode { get; init; }

    /// <summary>The quaternion parameters b, c, d.</summary>
    public (double B, double C, double D) Quaternion { get; init; }

    /// <summary>The qform offsets.</summary>
    public (double X, double Y, double Z) QOffset { get; init; }

    /// <summary>The sform rows x, y, z (12 values, row-major).</summary>
    public IReadOnlyList<double> SRow { get; init; } = [];

    /// <summary>Units code for space and time.</summary>
    public int XyztUnits { get; init; }

    /// <summary>The intent code.</summary>
    public int IntentCode { get; init; }

    /// <summary>The free-text description.</summary>
    public string Description { get; init; } = "";

    /// <summary>The number of dimensions (<c>dim[0]</c>).</summary>
    public int Rank => (int)Dim[0];

    /// <summary>
    /// Parses a header from its raw bytes (348 for NIfTI-1, 540 for NIfTI-2 or more).
    /// </summary>
    /// <param name="bytes">At least the header's bytes.</param>
    /// <param name="path">The file, for error messages.</param>
    /// <param name="singleFileExpected">True when reading a .nii file, false for a .hdr.</param>
    /// <exception cref="VolumeFormatException">The bytes are not a valid NIfTI header.</exception>
    public static NiftiHeader Parse(ReadOnlySpan<byte> bytes, string? path, bool? singleFileExpected = null)
    {
        var (version, bigEndian) = DetectVersion(bytes, path);
        var needed = version == 1 ? Nifti1Size : Nifti2Size;
        if (bytes.Length < needed)
        {
            throw new VolumeFormatException(path, "header", $"truncated: a NIfTI-{version} header has {needed} bytes, the file has only {bytes.Length}.");
        }

        var r = new Reader(bytes, bigEndian);
        return version == 1 ? ParseNifti1(r, bytes, path, singleFileExpected) : ParseNifti2(r, bytes, path);
    }

    /// <summary>Reads <c>sizeof_hdr</c> and returns the version and byte order, or throws if neither 348 nor 540.</summary>
    internal static (int Version, bool BigEndian) DetectVersion(ReadOnlySpan<byte> bytes, string? path)
    {
        if (bytes.Length < 4)
        {
            throw new VolumeFormatException(path, "sizeof_hdr", "the file is too short to hold a NIfTI header.");
        }

        var le = BinaryPrimitives.ReadInt32LittleEndian(bytes);
        var be = BinaryPrimitives.ReadInt32BigEndian(bytes);
        return (le, be) switch
        {
            (Nifti1Size, _) => (1, false),
            (_, Nifti1Size) => (1, true),
            (Nifti2Size, _) => (2, false),
            (_, Nifti2Size) => (2, true),
            _ => throw new VolumeFormatException(path, "sizeof_hdr", $"is {le}; a NIfTI file starts with 348 (NIfTI-1) or 540 (NIfTI-2), in either byte order. This is not a NIfTI file."),
        };
    }

    private static NiftiHeader ParseNifti1(Reader r, ReadOnlySpan<byte> bytes, string? path, bool? singleFileExpected)
    {
        var magic = Encoding.ASCII.GetString(bytes.Slice(344, 3));
        bool single = magic switch
        {
            "n+1" => true,
            "ni1" => false,
            _ => throw new VolumeFormatException(path, "magic", $"is \"{Printable(bytes.Slice(344, 4))}\", expected \"n+1\" (single .nii) or \"ni1\" (.hdr/.img pair); Analyze 7.5 files are not supported."),
        };
        if (singleFileExpected == true && !single)
        {
            throw new VolumeFormatException(path, "magic", "is \"ni1\" (a .hdr/.img pair), but the file is a single .nii file.");
        }

        var dim = new long[8];
        for (var n = 0; n < 8; n++)
        {
            dim[n] = r.Int16(40 + (2 * n));
        }

        var pixdim = new double[8];
        for (var n = 0; n < 8; n++)
        {
            pixdim[n] = r.Single(76 + (4 * n));
        }

        var srow = new double[12];
        for (var n = 0; n < 12; n++)
        {
            srow[n] = r.Single(280 + (4 * n));
        }

        var voxOffset = r.Single(108);
        if (!float.IsFinite(voxOffset) || voxOffset < 0 || voxOffset > int.MaxValue)
        {
            throw new VolumeFormatException(path, "vox_offset", $"is {voxOffset}; expected a non-negative byte offset.");
        }

        return new NiftiHeader
        {
            Version = 1,
            IsSingleFile = single,
            IsBigEndian = r.BigEndian,
            Dim = dim,
            PixDim = pixdim,
            DatatypeCode = r.Int16(70),
            BitPix = r.Int16(72),
            // nibabel: a single-file NIfTI-1 with vox_offset below 352 has its data at 352.
            VoxOffset = single ? Math.Max(352, (long)voxOffset) : (long)voxOffset,
            SclSlope = r.Single(112),
            SclInter = r.Single(116),
            XyztUnits = bytes[123],
            Description = CString(bytes.Slice(148, 80)),
            QformCode = r.Int16(252),
            SformCode = r.Int16(254),
            Quaternion = (r.Single(256), r.Single(260), r.Single(264)),
            QOffset = (r.Single(268), r.Single(272), r.Single(276)),
            SRow = srow,
            IntentCode = r.Int16(68),
        }.Validated(path);
    }

    private static NiftiHeader ParseNifti2(Reader r, ReadOnlySpan<byte> bytes, string? path)
    {
        var magic = bytes.Slice(4, 8);
        bool single;
        if (magic.SequenceEqual("n+2\0\r\n\u001a\n"u8))
        {
            single = true;
        }
        else if (magic.SequenceEqual("ni2\0\r\n\u001a\n"u8))
        {
            single = false;
        }
        else
        {
            throw new VolumeFormatException(path, "magic", $"is \"{Printable(magic)}\", expected \"n+2\" or \"ni2\" followed by \\0\\r\\n\\032\\n.");
        }

        var dim = new long[8];
        for (var n = 0; n < 8; n++)
        {
            dim[n] = r.Int64(16 + (8 * n));
        }

        var pixdim = new double[8];
        for (var n = 0; n < 8; n++)
        {
            pixdim[n] = r.Double(104 + (8 * n));
        }

        var srow = new double[12];
        for (var n = 0; n < 12; n++)
        {
            srow[n] = r.Double(400 + (8 * n));
        }

        var voxOffset = r.Int64(168);
        if (voxOffset < 0)
        {
            throw new VolumeFormatException(path, "vox_offset", $"is {voxOffset}; expected a non-negative byte offset.");
        }

        return new NiftiHeader
        {
            Version = 2,
            IsSingleFile = single,
            IsBigEndian = r.BigEndian,
            Dim = dim,
            PixDim = pixdim,
            DatatypeCode = r.Int16(12),
            BitPix = r.Int16(14),
            VoxOffset = single ? Math.Max(Nifti2Size + 4, voxOffset) : voxOffset,
            SclSlope = r.Double(176),
            SclInter = r.Double(184),
            Description = CString(bytes.Slice(240, 80)),
            QformCode = r.Int32(344),
            SformCode = r.Int32(348),
            Quaternion = (r.Double(352), r.Double(360), r.Double(368)),
            QOffset = (r.Double(376), r.Double(384), r.Double(392)),
            SRow = srow,
            XyztUnits = r.Int32(500),
            IntentCode = r.Int32(504),
        }.Validated(path);
    }

    private NiftiHeader Validated(string? path)
    {
        if (Dim[0] is < 1 or > 7)
        {
            throw new VolumeFormatException(path, "dim[0]", $"is {Dim[0]}; expected the number of dimensions, 1 to 7.");
        }

        for (var n = 1; n <= Dim[0]; n++)
        {
            if (Dim[n] < 1)
            {
                throw new VolumeFormatException(path, $"dim[{n}]", $"is {Dim[n]}; every used dimension must be at least 1.");
            }
        }

        return this;
    }

    /// <summary>The on-disk element type, or an error for complex, RGB and bit data.</summary>
    internal VoxelDataType GetDataType(string? path) => DatatypeCode switch
    {
        2 => VoxelDataType.UInt8,
        4 => VoxelDataType.Int16,
        8 => VoxelDataType.Int32,
        16 => VoxelDataType.Float32,
        64 => VoxelDataType.Float64,
        256 => VoxelDataType.Int8,
        512 => VoxelDataType.UInt16,
        768 => VoxelDataType.UInt32,
        1024 => VoxelDataType.Int64,
        1280 => VoxelDataType.UInt64,
        1 => throw Unsupported(path, "1-bit binary"),
        32 or 1792 or 2048 => throw Unsupported(path, "complex"),
        128 or 2304 => throw Unsupported(path, "RGB colour"),
        1536 => throw Unsupported(path, "128-bit float"),
        _ => throw new VolumeFormatException(path, "datatype", $"is {DatatypeCode}, which is not a NIfTI datatype code."),
    };

    private VolumeFormatException Unsupported(string? path, string what) =>
        new(path, "datatype", $"is {DatatypeCode} ({what} voxels); MedVlp reads real-valued scalar volumes only (uint8..float64).");

    /// <summary>The affine nibabel chooses: sform if sform_code &gt; 0, else qform if qform_code &gt; 0, else the base (Analyze) affine.</summary>
    public Affine GetBestAffine()
    {
        if (SformCode > 0)
        {
            return GetSformAffine();
        }

        return QformCode > 0 ? GetQformAffine() : GetBaseAffine();
    }

    /// <summary>The affine from the sform rows.</summary>
    public Affine GetSformAffine()
    {
        var m = new double[16];
        for (var n = 0; n < 12; n++)
        {
            m[n] = SRow[n];
        }

        m[15] = 1;
        return Affine.FromRowMajor(m);
    }

    /// <summary>The affine from the quaternion, pixdim and qfac (NIfTI method 2).</summary>
    public Affine GetQformAffine()
    {
        var (b, c, d) = Quaternion;
        var w2 = 1.0 - ((b * b) + (c * c) + (d * d));
        double a;
        if (w2 < 0)
        {
            // nibabel tolerates round-off up to 3 float32 epsilons; beyond it the quaternion is renormalised.
            a = 0;
            var n = Math.Sqrt((b * b) + (c * c) + (d * d));
            if (w2 < -3 * 1.1920928955078125e-07)
            {
                b /= n;
                c /= n;
                d /= n;
            }
        }
        else
        {
            a = Math.Sqrt(w2);
        }

        var nq = (a * a) + (b * b) + (c * c) + (d * d);
        var s = nq < 1e-300 ? 0 : 2.0 / nq;
        double X = b * s, Y = c * s, Z = d * s;
        double wX = a * X, wY = a * Y, wZ = a * Z;
        double xX = b * X, xY = b * Y, xZ = b * Z;
        double yY = c * Y, yZ = c * Z, zZ = d * Z;
        double[,] rot =
        {
            { 1.0 - (yY + zZ), xY - wZ, xZ + wY },
            { xY + wZ, 1.0 - (xX + zZ), yZ - wX },
            { xZ - wY, yZ + wX, 1.0 - (xX + yY) },
        };
        var qfac = PixDim[0] == -1 ? -1.0 : 1.0;
        double[] vox = [Math.Abs(PixDim[1]), Math.Abs(PixDim[2]), Math.Abs(PixDim[3]) * qfac];
        var m = new double[16];
        for (var row = 0; row < 3; row++)
        {
            for (var col = 0; col < 3; col++)
            {
                m[(row * 4) + col] = rot[row, col] * vox[col];
            }
        }

        m[3] = QOffset.X;
        m[7] = QOffset.Y;
        m[11] = QOffset.Z;
        m[15] = 1;
        return Affine.FromRowMajor(m);
    }

    /// <summary>nibabel's fallback affine: voxel sizes on the diagonal, x flipped, origin at the centre.</summary>
    public Affine GetBaseAffine()
    {
        var shape = new double[3];
        var zooms = new double[3];
        for (var n = 0; n < 3; n++)
        {
            var used = n + 1 <= Dim[0];
            shape[n] = used ? Dim[n + 1] : 1;
            zooms[n] = used ? Math.Abs(PixDim[n + 1]) : 1;
        }

        zooms[0] *= -1;
        var m = new double[16];
        for (var n = 0; n < 3; n++)
        {
            m[(n * 4) + n] = zooms[n];
            m[(n * 4) + 3] = -((shape[n] - 1) / 2.0) * zooms[n];
        }

        m[15] = 1;
        return Affine.FromRowMajor(m);
    }

    private static string CString(ReadOnlySpan<byte> bytes)
    {
        var end = bytes.IndexOf((byte)0);
        return Encoding.Latin1.GetString(end < 0 ? bytes : bytes[..end]).Trim();
    }

    private static string Printable(ReadOnlySpan<byte> bytes)
    {
        var sb = new StringBuilder();
        foreach (var b in bytes)
        {
            sb.Append(b is >= 32 and < 127 ? (char)b : '.');
        }

        return sb.ToString();
    }

    private readonly ref struct Reader(ReadOnlySpan<byte> bytes, bool bigEndian)
    {
        private readonly ReadOnlySpan<byte> _b = bytes;

        public bool BigEndian { get; } = bigEndian;

        public short Int16(int o) => BigEndian ? BinaryPrimitives.ReadInt16BigEndian(_b[o..]) : BinaryPrimitives.ReadInt16LittleEndian(_b[o..]);

        public int Int32(int o) => BigEndian ? BinaryPrimitives.ReadInt32BigEndian(_b[o..]) : BinaryPrimitives.ReadInt32LittleEndian(_b[o..]);

        public long Int64(int o) => BigEndian ? BinaryPrimitives.ReadInt64BigEndian(_b[o..]) : BinaryPrimitives.ReadInt64LittleEndian(_b[o..]);

        public float Single(int o) => BigEndian ? BinaryPrimitives.ReadSingleBigEndian(_b[o..]) : BinaryPrimitives.ReadSingleLittleEndian(_b[o..]);

        public double Double(int o) => BigEndian ? BinaryPrimitives.ReadDoubleBigEndian(_b[o..]) : BinaryPrimitives.ReadDoubleLittleEndian(_b[o..]);
    }
}
