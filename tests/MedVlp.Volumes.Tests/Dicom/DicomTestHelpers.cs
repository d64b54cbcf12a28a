using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using MedVlp.Volumes;
using MedVlp.Volumes.IO.Dicom;

namespace MedVlp.Volumes.Tests.Dicom;

/// <summary>Writes small explicit-VR little-endian Part-10 files for tests (synthetic series, hostile headers).</summary>
internal sealed class DicomBuilder
{
    private readonly SortedDictionary<uint, (string Vr, byte[] Value)> _elements = [];
    private readonly HashSet<uint> _undefinedLength = [];

    public string TransferSyntax { get; set; } = "1.2.840.10008.1.2.1";

    public DicomBuilder Text(uint tag, string vr, string value)
    {
        var bytes = Encoding.ASCII.GetBytes(value);
        if (bytes.Length % 2 == 1)
        {
            bytes = [.. bytes, (byte)(vr == "UI" ? 0 : ' ')];
        }

        _elements[tag] = (vr, bytes);
        return this;
    }

    public DicomBuilder UShort(uint tag, int value)
    {
        var b = new byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(b, (ushort)value);
        _elements[tag] = ("US", b);
        return this;
    }

    public DicomBuilder Decimals(uint tag, params double[] values) =>
        Text(tag, "DS", string.Join('\\', values.Select(v => v.ToString("0.######", CultureInfo.InvariantCulture))));

    public DicomBuilder Pixels(ReadOnlySpan<short> values)
    {
        _elements[0x7FE0_0010] = ("OW", MemoryMarshal.AsBytes(values).ToArray());
        return this;
    }

    public DicomBuilder Raw(uint tag, string vr, byte[] value)
    {
        _elements[tag] = (vr, value);
        return this;
    }

    /// <summary>A sequence of items; with <paramref name="undefinedLength"/> the sequence and its items use delimiters.</summary>
    public DicomBuilder Sequence(uint tag, bool undefinedLength, params DicomBuilder[] items)
    {
        using var ms = new MemoryStream();
        foreach (var item in items)
        {
            var body = item.BuildDataset();
            ms.Write([0xFE, 0xFF, 0x00, 0xE0]);
            ms.Write(BitConverter.GetBytes(undefinedLength ? 0xFFFF_FFFFu : (uint)body.Length));
            ms.Write(body);
            if (undefinedLength)
            {
                ms.Write([0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0]);
            }
        }

        if (undefinedLength)
        {
            ms.Write([0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
            _undefinedLength.Add(tag);
        }

        _elements[tag] = ("SQ", ms.ToArray());
        return this;
    }

    public DicomBuilder Remove(uint tag)
    {
        _elements.Remove(tag);
        return this;
    }

    /// <summary>The data set's elements only (no preamble or meta header).</summary>
    public byte[] BuildDataset()
    {
        using var ms = new MemoryStream();
        foreach (var (tag, (vr, value)) in _elements)
        {
            WriteElement(ms, tag, vr, value, _undefinedLength.Contains(tag));
        }

        return ms.ToArray();
    }

    /// <summary>A 16-bit signed slice of <paramref name="columns"/> x <paramref name="rows"/> at a position and orientation.</summary>
    public static DicomBuilder Slice(string seriesUid, int instance, double[] position, double[]? orientation = null, int rows = 4, int columns = 3, double[]? spacing = null)
    {
        var b = new DicomBuilder()
            .Text(0x0008_0018, "UI", $"1.2.3.4.{instance}")
            .Text(0x0008_0060, "CS", "CT")
            .Text(0x0020_000D, "UI", "1.2.3")
            .Text(0x0020_000E, "UI", seriesUid)
            .Text(0x0020_0013, "IS", instance.ToString(CultureInfo.InvariantCulture))
            .Decimals(0x0020_0032, position)
            .Decimals(0x0020_0037, orientation ?? [1, 0, 0, 0, 1, 0])
            .UShort(0x0028_0002, 1)
            .Text(0x0028_0004, "CS", "MONOCHROME2")
            .UShort(0x0028_0010, rows)
            .UShort(0x0028_0011, columns)
            .Decimals(0x0028_0030, spacing ?? [0.5, 0.75])
            .UShort(0x0028_0100, 16)
            .UShort(0x0028_0101, 16)
            .UShort(0x0028_0102, 15)
            .UShort(0x0028_0103, 1);
        var px = new short[rows * columns];
        for (var n = 0; n < px.Length; n++)
        {
            px[n] = (short)((instance * 100) + n);
        }

        return b.Pixels(px);
    }

    public byte[] Build()
    {
        using var ms = new MemoryStream();
        ms.Write(new byte[128]);
        ms.Write("DICM"u8);
        var meta = new MemoryStream();
        WriteElement(meta, 0x0002_0001, "OB", [0, 1]);
        var ts = Encoding.ASCII.GetBytes(TransferSyntax);
        if (ts.Length % 2 == 1)
        {
            ts = [.. ts, 0];
        }

        WriteElement(meta, 0x0002_0010, "UI", ts);
        var groupLength = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(groupLength, (uint)meta.Length);
        WriteElement(ms, 0x0002_0000, "UL", groupLength);
        meta.Position = 0;
        meta.CopyTo(ms);
        ms.Write(BuildDataset());
        return ms.ToArray();
    }

    public string Write(string path)
    {
        File.WriteAllBytes(path, Build());
        return path;
    }

    private static void WriteElement(Stream s, uint tag, string vr, byte[] value, bool undefinedLength = false)
    {
        Span<byte> h = stackalloc byte[12];
        BinaryPrimitives.WriteUInt16LittleEndian(h, (ushort)(tag >> 16));
        BinaryPrimitives.WriteUInt16LittleEndian(h[2..], (ushort)tag);
        h[4] = (byte)vr[0];
        h[5] = (byte)vr[1];
        if (vr is "OB" or "OW" or "SQ" or "UN" or "UT" or "OF")
        {
            BinaryPrimitives.WriteUInt32LittleEndian(h[8..], undefinedLength ? 0xFFFF_FFFFu : (uint)value.Length);
            s.Write(h);
        }
        else
        {
            BinaryPrimitives.WriteUInt16LittleEndian(h[6..], (ushort)value.Length);
            s.Write(h[..8]);
        }

        s.Write(value);
    }
}

/// <summary>Reads the golden JSON written by tests/golden/make_dicom_golden.py.</summary>
internal static class DicomGolden
{
    private static readonly Lazy<JsonElement> FilesJson = new(() => Load("dicom_files.json").GetProperty("files"));
    private static readonly Lazy<JsonElement> SeriesJson = new(() => Load("dicom_series.json").GetProperty("series"));

    public static JsonElement File(string name) => FilesJson.Value.GetProperty(name);

    public static JsonElement Series(string name) => SeriesJson.Value.GetProperty(name);

    public static IEnumerable<string> FilesWithStatus(string status) =>
        FilesJson.Value.EnumerateObject().Where(p => p.Value.GetProperty("status").GetString() == status).Select(p => p.Name);

    public static string Sha256(ReadOnlySpan<float> values) =>
        Convert.ToHexStringLower(SHA256.HashData(MemoryMarshal.AsBytes(values)));

    public static string FileSha256(string path) => Convert.ToHexStringLower(SHA256.HashData(System.IO.File.ReadAllBytes(path)));

    private static JsonElement Load(string name)
    {
        using var doc = JsonDocument.Parse(System.IO.File.ReadAllText(MedVlp.Testing.TestData.Golden(name)));
        return doc.RootElement.Clone();
    }
}

/// <summary>Tag numbers used by the tests (the library's table is internal to the parser).</summary>
internal static class DicomTagIds
{
    public const uint ImagePositionPatient = DicomTag.ImagePositionPatient;
    public const uint ImageOrientationPatient = DicomTag.ImageOrientationPatient;
    public const uint PixelSpacing = DicomTag.PixelSpacing;
    public const uint RescaleIntercept = DicomTag.RescaleIntercept;
    public const uint RescaleSlope = DicomTag.RescaleSlope;
    public const uint SharedFunctionalGroups = DicomTag.SharedFunctionalGroups;
    public const uint PerFrameFunctionalGroups = DicomTag.PerFrameFunctionalGroups;
    public const uint PlanePositionSequence = DicomTag.PlanePositionSequence;
    public const uint PlaneOrientationSequence = DicomTag.PlaneOrientationSequence;
    public const uint PixelMeasuresSequence = DicomTag.PixelMeasuresSequence;
    public const uint PixelValueTransformationSequence = DicomTag.PixelValueTransformationSequence;
}
