using System.Globalization;
using System.IO.Compression;
using System.Text;

namespace MedVlp.Volumes.IO;

/// <summary>How the voxels of a MetaImage or NRRD file are compressed.</summary>
internal enum RawEncoding
{
    Raw,
    Gzip,
    Zlib,
    Ascii,
}

/// <summary>
/// The layout a text-header format (MetaImage, NRRD) describes: spatial sizes, interleaved components, outer
/// frames, element type and byte order, and the geometry in LPS or RAS world coordinates.
/// </summary>
internal sealed class RawImageLayout
{
    /// <summary>Extents along i, j, k (missing axes are 1).</summary>
    public required long[] Sizes { get; init; }

    /// <summary>Values per voxel stored interleaved (fastest); 1 for scalar images.</summary>
    public long Components { get; init; } = 1;

    /// <summary>Extents of the outer (slowest) non-spatial axes.</summary>
    public long[] OuterFrames { get; init; } = [];

    public required VoxelDataType Type { get; init; }

    public bool BigEndian { get; init; }

    /// <summary>Axis directions: column c is the (unit or scaled) world direction of voxel axis c.</summary>
    public required double[,] Direction { get; init; }

    public required double[] Spacing { get; init; }

    public required double[] Origin { get; init; }

    /// <summary>True when Direction/Origin are in LPS (ITK's physical space), false for RAS.</summary>
    public bool Lps { get; init; } = true;

    /// <summary>True when LPS applies to x only (NRRD "left-anterior-superior").</summary>
    public bool FlipXOnly { get; init; }
}

/// <summary>Decodes the voxels of a <see cref="RawImageLayout"/> from one or more data files and builds the volume.</summary>
internal static class RawImage
{
    /// <summary>Upper bound on a header read into memory.</summary>
    public const int MaxHeaderBytes = 1 << 20;

    /// <summary>The largest ratio of uncompressed to compressed size deflate can reach.</summary>
    public const long MaxDeflateRatio = 1032;

    /// <summary>One piece of voxel data: a file, the byte offset where the data start (-1: at the end), and its length.</summary>
    public readonly record struct DataPiece(string Path, long Offset, long FileLength);

    public static Volume Read(RawImageLayout layout, IReadOnlyList<DataPiece> pieces, RawEncoding encoding, string headerPath,
        VolumeMetadata metadata, VolumeReadOptions options, CancellationToken cancellationToken)
    {
        var spatial = Multiply(Multiply(layout.Sizes[0], layout.Sizes[1]), layout.Sizes[2]);
        long outer = 1;
        foreach (var f in layout.OuterFrames)
        {
            outer = Multiply(outer, f);
        }

        var perVoxel = layout.Components;
        var total = Multiply(Multiply(spatial, perVoxel), outer);
        var toKeep = options.FirstFrameOnly ? spatial : total;
        if (spatial > int.MaxValue || total > Array.MaxLength || toKeep > options.MaxVoxels)
        {
            throw new VolumeFormatException(headerPath, "sizes",
                $"asks for {layout.Sizes[0]}x{layout.Sizes[1]}x{layout.Sizes[2]} voxels x {perVoxel} component(s) x {outer} frame(s) = {total} values; the limit is {Math.Min(options.MaxVoxels, Array.MaxLength)} (ResourceLimits.MaxVoxels; CLI --max-voxels).");
        }

        var size = layout.Type.SizeInBytes();
        var neededBytes = Multiply(total, size);
        if (pieces.Count == 0 || total % pieces.Count != 0)
        {
            throw new VolumeFormatException(headerPath, "data file", $"lists {pieces.Count} data files, which do not divide the {total} values evenly.");
        }

        if (encoding is RawEncoding.Gzip or RawEncoding.Zlib && neededBytes > options.MaxDecompressedBytes)
        {
            throw new VolumeFormatException(headerPath, "voxel data", $"{neededBytes} bytes would be decompressed; the limit is {options.MaxDecompressedBytes} (ResourceLimits.MaxDecompressedBytes).");
        }

        var perPiece = total / pieces.Count;
        var perPieceBytes = perPiece * size;
        foreach (var p in pieces)
        {
            var avail = p.Offset < 0 ? p.FileLength : p.FileLength - p.Offset;
            if (avail < 0)
            {
                throw new VolumeFormatException(p.Path, "header size", $"the data are said to start at byte {p.Offset}, beyond the end of the {p.FileLength}-byte file.");
            }

            var bound = encoding switch
            {
                RawEncoding.Raw => avail,
                RawEncoding.Ascii => (avail / 2) + 1,
                _ => Multiply(avail, MaxDeflateRatio),
            };
            var needed = encoding == RawEncoding.Ascii ? perPiece : perPieceBytes;
            if (needed > bound)
            {
                var what = encoding switch
                {
                    RawEncoding.Raw => $"truncated: {needed} bytes of voxel data are needed, {avail} remain in the file.",
                    RawEncoding.Ascii => $"truncated: {needed} text values are needed, {avail} bytes cannot hold them.",
                    _ => $"{needed} bytes of voxel data are needed, more than {avail} compressed bytes can hold (deflate expands at most {MaxDeflateRatio}x); the header is wrong or the file is truncated.",
                };
                throw new VolumeFormatException(p.Path, "voxel data", what);
            }

        }

        var data = VoxelBuffer.Allocate((int)total);
        for (var n = 0; n < pieces.Count; n++)
        {
            var piece = pieces[n];
            var target = data.AsSpan((int)(n * perPiece), (int)perPiece);
            using var file = SafeFile.OpenRead(piece.Path, reportedPath: headerPath, field: "data file");
            var offset = piece.Offset < 0 ? piece.FileLength - perPieceBytes : piece.Offset;
            file.Position = offset;
            try
            {
                switch (encoding)
                {
                    case RawEncoding.Raw:
                        VoxelDecoder.ReadInto(file, target, layout.Type, layout.BigEndian, 1, 0, piece.Path, cancellationToken);
                        break;
                    case RawEncoding.Gzip:
                        using (var gz = new GZipStream(file, CompressionMode.Decompress, leaveOpen: true))
                        {
                            VoxelDecoder.ReadInto(gz, target, layout.Type, layout.BigEndian, 1, 0, piece.Path, cancellationToken);
                        }

                        break;
                    case RawEncoding.Zlib:
                        using (var z = new ZLibStream(file, CompressionMode.Decompress, leaveOpen: true))
                        {
                            VoxelDecoder.ReadInto(z, target, layout.Type, layout.BigEndian, 1, 0, piece.Path, cancellationToken);
                        }

                        break;
                    case RawEncoding.Ascii:
                        ReadAscii(file, target, piece.Path, cancellationToken);
                        break;
                    default:
                        throw new ArgumentOutOfRangeException(nameof(encoding));
                }
            }
            catch (InvalidDataException ex)
            {
                throw new VolumeFormatException(piece.Path, "voxel data", $"the compressed data are corrupt: {ex.Message}", ex);
            }
        }

        var frameShape = new List<long>();
        if (perVoxel > 1)
        {
            data = Deinterleave(data, spatial, perVoxel, outer);
            frameShape.Add(perVoxel);
        }

        frameShape.AddRange(layout.OuterFrames);
        if (options.FirstFrameOnly && data.LongLength > spatial)
        {
            data = data.AsSpan(0, (int)spatial).ToArray();
            frameShape.Clear();
        }

        var shape = new VolumeShape((int)layout.Sizes[0], (int)layout.Sizes[1], (int)layout.Sizes[2]);
        var affine = AffineOf(layout, headerPath);
        return new Volume(data, shape, affine, frameShape.Select(f => (int)f).ToArray(),
            new Spacing(Math.Abs(layout.Spacing[0]), Math.Abs(layout.Spacing[1]), Math.Abs(layout.Spacing[2])), metadata);
    }

    /// <summary>The voxel-to-RAS affine: columns are direction x spacing, then LPS world axes x and y are negated.</summary>
    public static Affine AffineOf(RawImageLayout layout, string path)
    {
        var m = new double[16];
        for (var r = 0; r < 3; r++)
        {
            var sign = !layout.Lps ? 1.0 : layout.FlipXOnly ? (r == 0 ? -1.0 : 1.0) : (r < 2 ? -1.0 : 1.0);
            for (var c = 0; c < 3; c++)
            {
                m[(r * 4) + c] = (sign * layout.Direction[r, c] * layout.Spacing[c]) + 0.0; // + 0.0 turns -0 into 0
            }

            m[(r * 4) + 3] = (sign * layout.Origin[r]) + 0.0;
        }

        m[15] = 1;
        foreach (var v in m)
        {
            if (!double.IsFinite(v))
            {
                throw new VolumeFormatException(path, "geometry", "the spacing, direction or origin contains a non-finite number.");
            }
        }

        return Affine.FromRowMajor(m);
    }

    public static long Multiply(long a, long b) => a == 0 || b == 0 ? 0 : a > long.MaxValue / b ? long.MaxValue : a * b;

    private static float[] Deinterleave(float[] data, long spatial, long components, long outer)
    {
        var result = VoxelBuffer.Allocate(data.Length);
        var block = spatial * components;
        for (long f = 0; f < outer; f++)
        {
            for (long c = 0; c < components; c++)
            {
                var dst = ((f * components) + c) * spatial;
                var src = (f * block) + c;
                for (long v = 0; v < spatial; v++)
                {
                    result[dst + v] = data[src + (v * components)];
                }
            }
        }

        return result;
    }

    private static void ReadAscii(Stream stream, Span<float> target, string path, CancellationToken cancellationToken)
    {
        using var reader = new StreamReader(stream, Encoding.ASCII, false, 1 << 16, leaveOpen: true);
        var token = new StringBuilder();
        var n = 0;
        int ch;
        while (n < target.Length)
        {
            ch = reader.Read();
            if (ch < 0 || char.IsWhiteSpace((char)ch) || ch == ',')
            {
                if (token.Length > 0)
                {
                    if ((n & 0xFFFF) == 0)
                    {
                        cancellationToken.ThrowIfCancellationRequested();
                    }

                    if (!double.TryParse(token.ToString(), NumberStyles.Float, CultureInfo.InvariantCulture, out var v))
                    {
                        throw new VolumeFormatException(path, "voxel data", $"value {n} \"{token}\" is not a number.");
                    }

                    target[n++] = (float)v;
                    token.Clear();
                }

                if (ch < 0)
                {
                    break;
                }
            }
            else
            {
                if (token.Length > 64)
                {
                    throw new VolumeFormatException(path, "voxel data", $"value {n} is longer than 64 characters; this is not ASCII voxel data.");
                }

                token.Append((char)ch);
            }
        }

        if (n < target.Length)
        {
            throw new VolumeFormatException(path, "voxel data", $"truncated: expected {target.Length} text values, the file holds {n}.");
        }
    }
}
