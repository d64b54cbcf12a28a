using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace MedVlp.Retrieval;

/// <summary>The element types an <see cref="ExactIndex"/> stores its matrix in.</summary>
public enum IndexElementType
{
    /// <summary>32-bit floats (<c>&lt;f4</c>): exact scores.</summary>
    Float32,

    /// <summary>16-bit floats (<c>&lt;f2</c>): half the memory and memory traffic, scores to about 1e-3.</summary>
    Float16,
}

/// <summary>
/// Reads and writes the header of NumPy's <c>.npy</c> format (version 1.0/2.0, little-endian, C order, two
/// dimensions), so an index matrix opens with <c>numpy.load(path, mmap_mode="r")</c>.
/// </summary>
internal static partial class NpyFormat
{
    private static readonly byte[] Magic = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    /// <summary>The length of the headers <see cref="Header"/> writes (fixed, so a header can be rewritten in place once the row count is known).</summary>
    public const int HeaderLength = 128;

    /// <summary>The header of a 2-D matrix, <see cref="HeaderLength"/> bytes, so that the data starts on a 64-byte boundary.</summary>
    public static byte[] Header(IndexElementType type, long rows, int columns)
    {
        var descr = type == IndexElementType.Float32 ? "<f4" : "<f2";
        var dict = string.Create(CultureInfo.InvariantCulture, $"{{'descr': '{descr}', 'fortran_order': False, 'shape': ({rows}, {columns}), }}");
        var padding = HeaderLength - (Magic.Length + 4 + dict.Length + 1);
        var text = dict + new string(' ', padding) + "\n";
        var header = new byte[Magic.Length + 4 + text.Length];
        Magic.CopyTo(header, 0);
        header[6] = 1;
        header[7] = 0;
        header[8] = (byte)(text.Length & 0xFF);
        header[9] = (byte)(text.Length >> 8);
        Encoding.ASCII.GetBytes(text, 0, text.Length, header, 10);
        return header;
    }

    /// <summary>Parses the header of <paramref name="path"/>: element type, shape and where the data starts.</summary>
    /// <exception cref="InvalidDataException">Not a 2-D little-endian float32/float16 C-order .npy file, or its size does not match.</exception>
    public static (IndexElementType Type, long Rows, int Columns, long DataOffset) ReadHeader(string path)
    {
        using var stream = File.OpenRead(path);
        Span<byte> prefix = stackalloc byte[12];
        if (stream.ReadAtLeast(prefix, 10, throwOnEndOfStream: false) < 10 || !prefix[..6].SequenceEqual(Magic))
        {
            throw new InvalidDataException($"{path}: not a .npy file (the magic string \\x93NUMPY is missing).");
        }

        var major = prefix[6];
        long headerLength;
        int start;
        if (major == 1)
        {
            headerLength = prefix[8] | (prefix[9] << 8);
            start = 10;
        }
        else if (major is 2 or 3)
        {
            headerLength = BitConverter.ToUInt32(prefix[8..12]);
            start = 12;
        }
        else
        {
            throw new InvalidDataException($"{path}: field \"version\": .npy version {major} is not supported (expected 1, 2 or 3).");
        }

        if (headerLength > 65536 || start + headerLength > stream.Length)
        {
            throw new InvalidDataException($"{path}: field \"header_len\": {headerLength} bytes does not fit the file of {stream.Length} bytes.");
        }

        stream.Position = start;
        var text = new byte[headerLength];
        stream.ReadExactly(text);
        var dict = Encoding.Latin1.GetString(text);
        var descr = DescrPattern().Match(dict);
        var fortran = FortranPattern().Match(dict);
        var shape = ShapePattern().Match(dict);
        if (!descr.Success || !fortran.Success || !shape.Success)
        {
            throw new InvalidDataException($"{path}: the header {dict.Trim()} lacks descr, fortran_order or shape.");
        }

        var type = descr.Groups[1].Value switch
        {
            "<f4" => IndexElementType.Float32,
            "<f2" => IndexElementType.Float16,
            var other => throw new InvalidDataException($"{path}: field \"descr\": expected '<f4' or '<f2', found '{other}'."),
        };
        if (fortran.Groups[1].Value != "False")
        {
            throw new InvalidDataException($"{path}: field \"fortran_order\": expected False (C order).");
        }

        var dims = shape.Groups[1].Value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (dims.Length != 2 || !long.TryParse(dims[0], NumberStyles.None, CultureInfo.InvariantCulture, out var rows)
            || !int.TryParse(dims[1], NumberStyles.None, CultureInfo.InvariantCulture, out var columns) || columns < 1)
        {
            throw new InvalidDataException($"{path}: field \"shape\": expected (rows, columns) with columns >= 1, found ({shape.Groups[1].Value}).");
        }

        var offset = start + headerLength;
        var size = type == IndexElementType.Float32 ? 4 : 2;
        var expected = offset + (rows * columns * size);
        if (stream.Length != expected)
        {
            throw new InvalidDataException($"{path}: shape ({rows}, {columns}) of {descr.Groups[1].Value} needs {expected} bytes, the file has {stream.Length}.");
        }

        return (type, rows, columns, offset);
    }

    [GeneratedRegex(@"'descr'\s*:\s*'([^']*)'")]
    private static partial Regex DescrPattern();

    [GeneratedRegex(@"'fortran_order'\s*:\s*(True|False)")]
    private static partial Regex FortranPattern();

    [GeneratedRegex(@"'shape'\s*:\s*\(([^)]*)\)")]
    private static partial Regex ShapePattern();
}
