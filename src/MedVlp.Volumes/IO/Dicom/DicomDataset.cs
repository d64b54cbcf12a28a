using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace MedVlp.Volumes.IO.Dicom;

/// <summary>One kept element: its VR, its raw value bytes, and (for sequences) its items.</summary>
internal sealed record DicomElement(ushort Vr, byte[] Value, bool LittleEndian, IReadOnlyList<DicomDataset>? Items = null);

/// <summary>The elements MedVlp keeps from one data set (or sequence item), keyed by tag.</summary>
internal sealed class DicomDataset
{
    private readonly Dictionary<uint, DicomElement> _elements = [];

    public DicomDataset(string path) => Path = path;

    /// <summary>The file, for messages.</summary>
    public string Path { get; }

    public void Set(uint tag, DicomElement element) => _elements[tag] = element;

    public bool Contains(uint tag) => _elements.ContainsKey(tag);

    /// <summary>The value as text with trailing spaces and NULs removed, or null when absent.</summary>
    public string? GetString(uint tag)
    {
        if (!_elements.TryGetValue(tag, out var e))
        {
            return null;
        }

        return Encoding.ASCII.GetString(e.Value).TrimEnd(' ', '\0').TrimStart(' ');
    }

    /// <summary>An unsigned short (US) value, or null when absent or empty.</summary>
    public int? GetUInt16(uint tag)
    {
        if (!_elements.TryGetValue(tag, out var e) || e.Value.Length == 0)
        {
            return null;
        }

        if (e.Value.Length < 2)
        {
            throw new VolumeFormatException(Path, DicomTag.Name(tag), $"holds {e.Value.Length} byte(s); a US value needs 2.");
        }

        return e.LittleEndian ? BinaryPrimitives.ReadUInt16LittleEndian(e.Value) : BinaryPrimitives.ReadUInt16BigEndian(e.Value);
    }

    /// <summary>An integer string (IS) value, or null when absent or empty.</summary>
    public long? GetIntegerString(uint tag)
    {
        var s = GetString(tag);
        if (string.IsNullOrWhiteSpace(s))
        {
            return null;
        }

        var first = s.Split('\\')[0].Trim();
        if (long.TryParse(first, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v))
        {
            return v;
        }

        // Some writers store IS as a decimal ("1.0").
        if (double.TryParse(first, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && d == Math.Floor(d) && Math.Abs(d) < long.MaxValue)
        {
            return (long)d;
        }

        throw new VolumeFormatException(Path, DicomTag.Name(tag), $"is '{s}'; expected an integer string (IS).");
    }

    /// <summary>Decimal string (DS) values, or null when absent or empty.</summary>
    public double[]? GetDecimals(uint tag)
    {
        var s = GetString(tag);
        if (string.IsNullOrWhiteSpace(s))
        {
            return null;
        }

        var parts = s.Split('\\');
        var values = new double[parts.Length];
        for (var n = 0; n < parts.Length; n++)
        {
            if (!double.TryParse(parts[n].Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out values[n]) || !double.IsFinite(values[n]))
            {
                throw new VolumeFormatException(Path, DicomTag.Name(tag), $"is '{s}'; expected finite decimal strings (DS).");
            }
        }

        return values;
    }

    /// <summary>Exactly <paramref name="count"/> DS values, or null when absent.</summary>
    public double[]? GetDecimals(uint tag, int count)
    {
        var v = GetDecimals(tag);
        if (v is not null && v.Length != count)
        {
            throw new VolumeFormatException(Path, DicomTag.Name(tag), $"has {v.Length} value(s); expected {count}.");
        }

        return v;
    }

    /// <summary>The items of a kept sequence (empty when absent).</summary>
    public IReadOnlyList<DicomDataset> GetItems(uint tag) =>
        _elements.TryGetValue(tag, out var e) && e.Items is not null ? e.Items : [];
}
