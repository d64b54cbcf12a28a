using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace MedVlp.Volumes.IO.Dicom;

/// <summary>What parsing a Part-10 file (or a bare data set) up to its pixel data yields.</summary>
internal sealed class DicomFileHeader
{
    public required string Path { get; init; }

    public required DicomDataset Dataset { get; init; }

    public required DicomTransferSyntax TransferSyntax { get; init; }

    /// <summary>True when the file has a meta information header (group 0002).</summary>
    public bool HasMetaHeader { get; init; }

    /// <summary>Where the pixel data value starts, in <see cref="Inflated"/> when set, else in the file; -1 when there is none.</summary>
    public long PixelDataOffset { get; init; } = -1;

    /// <summary>The pixel data value length; -1 when undefined (encapsulated).</summary>
    public long PixelDataLength { get; init; } = -1;

    /// <summary>The length of the stream the offsets refer to.</summary>
    public long SourceLength { get; init; }

    /// <summary>The inflated data set of a deflated file; null otherwise.</summary>
    public byte[]? Inflated { get; init; }

    /// <summary>Opens the stream that <see cref="PixelDataOffset"/> refers to, positioned at the pixel data.</summary>
    public Stream OpenPixelData()
    {
        Stream s = Inflated is not null
            ? new MemoryStream(Inflated, writable: false)
            : new FileStream(Path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0, FileOptions.SequentialScan);
        s.Position = PixelDataOffset;
        return s;
    }
}

/// <summary>
/// A forward-only DICOM Part-10 parser that keeps only the elements MedVlp needs (<see cref="DicomTag.KnownVr"/>),
/// skips everything else (undefined-length sequences included) and stops at the pixel data. Every length is
/// checked against what is left of the file before anything is read or allocated.
/// </summary>
internal sealed class DicomParser : IDisposable
{
    /// <summary>Deflate cannot expand data by more than this factor.</summary>
    internal const long MaxDeflateRatio = 1032;
    private const int MaxKeptValueLength = 1 << 16;
    private const int MaxDepth = 32;
    private const uint UndefinedLength = 0xFFFF_FFFF;

    private readonly string _path;
    private readonly byte[] _scratch = new byte[12];
    private Stream _stream;
    private MemoryStream? _inflatedStream;
    private long _pos;
    private long _end;

    private DicomParser(Stream stream, string path, long length)
    {
        _stream = stream;
        _path = path;
        _end = length;
    }

    /// <summary>True when the file starts like DICOM: "DICM" at byte 128 (or 0).</summary>
    public static bool HasDicomMagic(ReadOnlySpan<byte> head) =>
        (head.Length >= 132 && head.Slice(128, 4).SequenceEqual("DICM"u8)) || (head.Length >= 4 && head[..4].SequenceEqual("DICM"u8));

    /// <summary>True when a file without the "DICM" magic still looks like a bare data set (group 0008 first, plausible VR).</summary>
    public static bool LooksLikeBareDataset(ReadOnlySpan<byte> head)
    {
        if (head.Length < 8)
        {
            return false;
        }

        var le = BinaryPrimitives.ReadUInt16LittleEndian(head);
        var be = BinaryPrimitives.ReadUInt16BigEndian(head);
        var group = Math.Min(le, be);
        if (group is not (0x0002 or 0x0008))
        {
            return false;
        }

        var vr = (ushort)((head[4] << 8) | head[5]);
        if (Vr.IsValid(vr))
        {
            return true;
        }

        // Implicit VR: a plausible small length.
        var length = le <= be ? BinaryPrimitives.ReadUInt32LittleEndian(head[4..]) : BinaryPrimitives.ReadUInt32BigEndian(head[4..]);
        return length < 1024;
    }

    /// <summary>Parses the file up to its pixel data.</summary>
    /// <exception cref="VolumeFormatException">The file is not DICOM, is damaged, or uses an unsupported transfer syntax.</exception>
    public static DicomFileHeader ParseFile(string path, CancellationToken cancellationToken = default) =>
        ParseFile(path, nullIfNotDicom: false, cancellationToken)!;

    /// <summary>Parses the file up to its pixel data; returns null for a file that does not look like DICOM at all when <paramref name="nullIfNotDicom"/>.</summary>
    public static DicomFileHeader? ParseFile(string path, bool nullIfNotDicom, CancellationToken cancellationToken = default)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 8192, FileOptions.SequentialScan);
        using var parser = new DicomParser(file, path, file.Length);
        return parser.ParseAll(nullIfNotDicom, cancellationToken);
    }

    /// <summary>Parses a seekable stream (a whole file) up to its pixel data.</summary>
    public static DicomFileHeader Parse(Stream stream, string path, CancellationToken cancellationToken = default)
    {
        using var parser = new DicomParser(stream, path, stream.Length);
        return parser.ParseAll(nullIfNotDicom: false, cancellationToken)!;
    }

    /// <inheritdoc />
    public void Dispose() => _inflatedStream?.Dispose();

    private DicomFileHeader? ParseAll(bool nullIfNotDicom, CancellationToken cancellationToken)
    {
        var head = new byte[132];
        var got = _stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        _stream.Position = 0;
        _pos = 0;
        var hasMeta = false;
        if (got >= 132 && head.AsSpan(128, 4).SequenceEqual("DICM"u8))
        {
            Seek(132);
            hasMeta = true;
        }
        else if (got >= 4 && head.AsSpan(0, 4).SequenceEqual("DICM"u8))
        {
            Seek(4);
            hasMeta = true;
        }
        else if (!LooksLikeBareDataset(head.AsSpan(0, got)))
        {
            if (nullIfNotDicom)
            {
                return null;
            }

            throw new VolumeFormatException(_path, "preamble", "not a DICOM file: no \"DICM\" magic at byte 128 and the file does not start with a DICOM data set.");
        }

        var meta = new DicomDataset(_path);
        if (Remaining >= 2 && PeekGroupLittleEndian() == 0x0002)
        {
            hasMeta = true;
            ParseMeta(meta);
        }

        DicomTransferSyntax syntax;
        var uid = meta.GetString(DicomTag.TransferSyntaxUid);
        if (string.IsNullOrEmpty(uid))
        {
            syntax = GuessSyntax();
        }
        else
        {
            syntax = DicomTransferSyntax.FromUid(uid);
        }

        if (!syntax.Supported)
        {
            throw new VolumeFormatException(_path, "TransferSyntaxUID", $"unsupported transfer syntax {syntax.Uid} ({syntax.Name}); MedVlp decodes uncompressed, deflated and RLE Lossless DICOM.");
        }

        byte[]? inflated = null;
        if (syntax.Deflated)
        {
            inflated = Inflate(cancellationToken);
            _inflatedStream = new MemoryStream(inflated, writable: false);
            _stream = _inflatedStream;
            _pos = 0;
            _end = inflated.Length;
        }

        var dataset = new DicomDataset(_path);
        var pixel = ParseDataset(dataset, _end, syntax.ExplicitVr, syntax.LittleEndian, depth: 0, topLevel: true, untilItemDelimiter: false, cancellationToken);
        return new DicomFileHeader
        {
            Path = _path,
            Dataset = dataset,
            TransferSyntax = syntax,
            HasMetaHeader = hasMeta,
            PixelDataOffset = pixel.Offset,
            PixelDataLength = pixel.Length,
            SourceLength = _end,
            Inflated = inflated,
        };
    }

    private long Remaining => _end - _pos;

    private ushort PeekGroupLittleEndian()
    {
        ReadExactly(2, "meta header");
        Seek(_pos - 2);
        return BinaryPrimitives.ReadUInt16LittleEndian(_scratch);
    }

    private void ParseMeta(DicomDataset meta)
    {
        while (Remaining >= 8 && PeekGroupLittleEndian() == 0x0002)
        {
            ReadExactly(6, "meta header");
            var tag = ((uint)BinaryPrimitives.ReadUInt16LittleEndian(_scratch) << 16) | BinaryPrimitives.ReadUInt16LittleEndian(_scratch.AsSpan(2));
            var vr = (ushort)((_scratch[4] << 8) | _scratch[5]);
            long length;
            if (!Vr.IsValid(vr))
            {
                // A few writers put the meta header in implicit VR: the 4-byte length follows the tag.
                Seek(_pos - 2);
                ReadExactly(4, "meta header");
                length = BinaryPrimitives.ReadUInt32LittleEndian(_scratch);
                vr = tag == DicomTag.TransferSyntaxUid ? Vr.UI : Vr.OB;
            }
            else if (Vr.HasLongLength(vr))
            {
                ReadExactly(6, "meta header");
                length = BinaryPrimitives.ReadUInt32LittleEndian(_scratch.AsSpan(2));
            }
            else
            {
                ReadExactly(2, "meta header");
                length = BinaryPrimitives.ReadUInt16LittleEndian(_scratch);
            }

            CheckLength(tag, length);
            if (tag == DicomTag.TransferSyntaxUid)
            {
                meta.Set(tag, new DicomElement(vr, ReadValue(tag, length), true));
            }
            else
            {
                Seek(_pos + length);
            }
        }
    }

    private DicomTransferSyntax GuessSyntax()
    {
        if (Remaining < 8)
        {
            throw new VolumeFormatException(_path, "data set", "truncated: the file ends before the first data element.");
        }

        ReadExactly(6, "data set");
        Seek(_pos - 6);
        var le = BinaryPrimitives.ReadUInt16LittleEndian(_scratch);
        var be = BinaryPrimitives.ReadUInt16BigEndian(_scratch);
        var vr = (ushort)((_scratch[4] << 8) | _scratch[5]);
        var explicitVr = Vr.IsValid(vr);
        if (le <= be)
        {
            return explicitVr ? DicomTransferSyntax.ExplicitVrLittleEndian : DicomTransferSyntax.ImplicitVrLittleEndian;
        }

        return explicitVr
            ? DicomTransferSyntax.ExplicitVrBigEndian
            : throw new VolumeFormatException(_path, "data set", "starts with a big-endian implicit-VR element, which DICOM does not define.");
    }

    private byte[] Inflate(CancellationToken cancellationToken)
    {
        var compressed = Remaining;
        var limit = Math.Min(compressed * MaxDeflateRatio, Array.MaxLength);
        using var output = new MemoryStream((int)Math.Min(Math.Max(compressed * 4, 4096), limit));
        var buffer = new byte[1 << 16];
        try
        {
            using var inflater = new DeflateStream(_stream, CompressionMode.Decompress, leaveOpen: true);
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var n = inflater.Read(buffer);
                if (n == 0)
                {
                    break;
                }

                if (output.Length + n > limit)
                {
                    throw new VolumeFormatException(_path, "deflated data set", $"inflates to more than {limit} bytes from {compressed} compressed bytes (deflate expands at most {MaxDeflateRatio}x); the data are corrupt or a decompression bomb.");
                }

                output.Write(buffer, 0, n);
            }
        }
        catch (InvalidDataException ex)
        {
            throw new VolumeFormatException(_path, "deflated data set", $"the deflate stream is corrupt: {ex.Message}", ex);
        }

        return output.ToArray();
    }

    /// <summary>Parses elements until <paramref name="end"/>, an item delimiter, or (at top level) the pixel data.</summary>
    private (long Offset, long Length) ParseDataset(DicomDataset into, long end, bool explicitVr, bool littleEndian, int depth, bool topLevel,
        bool untilItemDelimiter, CancellationToken cancellationToken)
    {
        if (depth > MaxDepth)
        {
            throw new VolumeFormatException(_path, "sequence", $"sequences are nested more than {MaxDepth} deep; the file is damaged.");
        }

        while (_pos < end)
        {
            if (topLevel)
            {
                cancellationToken.ThrowIfCancellationRequested();
            }

            if (end - _pos < 4 && topLevel)
            {
                // Trailing padding bytes after the last element.
                Seek(end);
                break;
            }

            var tag = ReadTag(littleEndian);
            if (tag >> 16 == 0xFFFE)
            {
                ReadExactly(4, DicomTag.Format(tag));
                var delimiterLength = ReadUInt32(littleEndian);
                if (tag == DicomTag.ItemDelimitation && untilItemDelimiter)
                {
                    return (-1, -1);
                }

                if (tag == DicomTag.ItemDelimitation || tag == DicomTag.SequenceDelimitation)
                {
                    // A stray delimiter at this level: tolerated, as pydicom does.
                    continue;
                }

                throw new VolumeFormatException(_path, DicomTag.Format(tag), $"an item tag (length {delimiterLength}) appears outside a sequence at byte {_pos - 8}; the file is damaged.");
            }

            ushort vr;
            long length;
            if (explicitVr)
            {
                ReadExactly(2, DicomTag.Name(tag));
                vr = (ushort)((_scratch[0] << 8) | _scratch[1]);
                if (!Vr.IsValid(vr))
                {
                    throw new VolumeFormatException(_path, DicomTag.Name(tag), $"has value representation {Vr.ToString(vr)} at byte {_pos - 6}; expected two upper-case letters (an explicit-VR file). The file is damaged or a length before it is wrong.");
                }

                if (Vr.HasLongLength(vr))
                {
                    ReadExactly(2, DicomTag.Name(tag));
                    ReadExactly(4, DicomTag.Name(tag));
                    length = ReadUInt32(littleEndian);
                }
                else
                {
                    ReadExactly(2, DicomTag.Name(tag));
                    length = littleEndian ? BinaryPrimitives.ReadUInt16LittleEndian(_scratch) : BinaryPrimitives.ReadUInt16BigEndian(_scratch);
                }
            }
            else
            {
                ReadExactly(4, DicomTag.Name(tag));
                length = ReadUInt32(littleEndian);
                vr = DicomTag.KnownVr(tag);
                if (tag == DicomTag.PixelData)
                {
                    vr = Vr.OW;
                }
            }

            if (topLevel && (tag == DicomTag.FloatPixelData || tag == DicomTag.DoubleFloatPixelData))
            {
                throw new VolumeFormatException(_path, DicomTag.Format(tag), "float and double-float pixel data are not supported.");
            }

            if (topLevel && tag == DicomTag.PixelData)
            {
                if (length != UndefinedLength)
                {
                    CheckLength(tag, length);
                }

                return (_pos, length == UndefinedLength ? -1 : length);
            }

            if (length == UndefinedLength)
            {
                if (explicitVr && vr != Vr.SQ && vr != Vr.UN)
                {
                    throw new VolumeFormatException(_path, DicomTag.Name(tag), $"has undefined length with value representation {Vr.ToString(vr)}; only sequences may.");
                }

                // UN with undefined length holds an implicit VR little endian sequence (PS3.5 6.2.2).
                var (seqExplicit, seqLittle) = vr == Vr.UN ? (false, true) : (explicitVr, littleEndian);
                var items = ParseSequence(tag, end, undefinedLength: true, seqExplicit, seqLittle, depth, keep: DicomTag.KnownVr(tag) == Vr.SQ, cancellationToken);
                if (items is not null)
                {
                    into.Set(tag, new DicomElement(Vr.SQ, [], littleEndian, items));
                }

                continue;
            }

            CheckLength(tag, length, end);
            var known = DicomTag.KnownVr(tag);
            if (known == Vr.SQ && (vr == Vr.SQ || vr == 0 || vr == Vr.UN))
            {
                var (seqExplicit, seqLittle) = vr == Vr.UN ? (false, true) : (explicitVr, littleEndian);
                var items = ParseSequence(tag, _pos + length, undefinedLength: false, seqExplicit, seqLittle, depth, keep: true, cancellationToken);
                into.Set(tag, new DicomElement(Vr.SQ, [], littleEndian, items));
            }
            else if (known != 0 && known != Vr.SQ)
            {
                into.Set(tag, new DicomElement(explicitVr ? vr : known, ReadValue(tag, length), littleEndian));
            }
            else
            {
                Seek(_pos + length);
            }
        }

        if (_pos > end)
        {
            throw new VolumeFormatException(_path, "sequence item", $"an element runs {_pos - end} byte(s) past the end of its enclosing item; a length is wrong.");
        }

        return (-1, -1);
    }

    private List<DicomDataset>? ParseSequence(uint tag, long end, bool undefinedLength, bool explicitVr, bool littleEndian, int depth, bool keep,
        CancellationToken cancellationToken)
    {
        var items = keep ? new List<DicomDataset>() : null;
        var limit = undefinedLength ? _end : end;
        while (_pos < limit)
        {
            var itemTag = ReadTag(littleEndian);
            ReadExactly(4, DicomTag.Name(tag));
            var length = ReadUInt32(littleEndian);
            if (itemTag == DicomTag.SequenceDelimitation)
            {
                return items;
            }

            if (itemTag != DicomTag.Item)
            {
                throw new VolumeFormatException(_path, DicomTag.Name(tag), $"expected a sequence item tag (FFFE,E000) at byte {_pos - 8}, found {DicomTag.Format(itemTag)}; a length is wrong or the file is damaged.");
            }

            var item = new DicomDataset(_path);
            if (length == UndefinedLength)
            {
                ParseDataset(item, limit, explicitVr, littleEndian, depth + 1, topLevel: false, untilItemDelimiter: true, cancellationToken);
            }
            else
            {
                CheckLength(tag, length, limit);
                if (keep)
                {
                    ParseDataset(item, _pos + length, explicitVr, littleEndian, depth + 1, topLevel: false, untilItemDelimiter: false, cancellationToken);
                }
                else
                {
                    Seek(_pos + length);
                }
            }

            items?.Add(item);
        }

        if (undefinedLength)
        {
            throw new VolumeFormatException(_path, DicomTag.Name(tag), "truncated: the file ends inside an undefined-length sequence (no sequence delimiter).");
        }

        return items;
    }

    private uint ReadTag(bool littleEndian)
    {
        ReadExactly(4, "data element tag");
        return littleEndian
            ? ((uint)BinaryPrimitives.ReadUInt16LittleEndian(_scratch) << 16) | BinaryPrimitives.ReadUInt16LittleEndian(_scratch.AsSpan(2))
            : ((uint)BinaryPrimitives.ReadUInt16BigEndian(_scratch) << 16) | BinaryPrimitives.ReadUInt16BigEndian(_scratch.AsSpan(2));
    }

    private uint ReadUInt32(bool littleEndian) =>
        littleEndian ? BinaryPrimitives.ReadUInt32LittleEndian(_scratch) : BinaryPrimitives.ReadUInt32BigEndian(_scratch);

    private void CheckLength(uint tag, long length, long end = -1)
    {
        if (end < 0)
        {
            end = _end;
        }

        if (length > end - _pos)
        {
            throw new VolumeFormatException(_path, DicomTag.Name(tag), $"declares a {length}-byte value at byte {_pos}, but only {Math.Max(0, end - _pos)} byte(s) remain{(end == _end ? " in the file" : " in its sequence item")}; the file is truncated or the length is wrong.");
        }
    }

    private byte[] ReadValue(uint tag, long length)
    {
        if (length > MaxKeptValueLength)
        {
            throw new VolumeFormatException(_path, DicomTag.Name(tag), $"has a {length}-byte value; expected at most {MaxKeptValueLength} bytes for this attribute.");
        }

        var value = new byte[length];
        _stream.ReadExactly(value);
        _pos += length;
        return value;
    }

    private void ReadExactly(int count, string field)
    {
        if (count > Remaining)
        {
            throw new VolumeFormatException(_path, field, $"truncated: the file ends at byte {_end} in the middle of a data element header.");
        }

        _stream.ReadExactly(_scratch.AsSpan(0, count));
        _pos += count;
    }

    private void Seek(long position)
    {
        _stream.Position = position;
        _pos = position;
    }

    /// <summary>For messages: the ASCII text of a byte span.</summary>
    internal static string Ascii(ReadOnlySpan<byte> bytes) => Encoding.ASCII.GetString(bytes);
}
