using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;

namespace MedVlp.Retrieval.Tests;

/// <summary>A minimal reader of the float32 .npy files numpy writes (golden inputs), independent of the library's.</summary>
internal static partial class Npy
{
    public static (float[] Data, int Rows, int Columns) ReadFloat32(string path)
    {
        var bytes = File.ReadAllBytes(path);
        Assert.Equal(0x93, bytes[0]);
        var headerLength = bytes[8] | (bytes[9] << 8);
        var header = Encoding.ASCII.GetString(bytes, 10, headerLength);
        Assert.Contains("'descr': '<f4'", header, StringComparison.Ordinal);
        var shape = ShapePattern().Match(header);
        var rows = int.Parse(shape.Groups[1].Value, CultureInfo.InvariantCulture);
        var columns = int.Parse(shape.Groups[2].Value, CultureInfo.InvariantCulture);
        var data = MemoryMarshal.Cast<byte, float>(bytes.AsSpan(10 + headerLength)).ToArray();
        Assert.Equal(rows * columns, data.Length);
        return (data, rows, columns);
    }

    [GeneratedRegex(@"'shape': \((\d+), (\d+)\)")]
    private static partial Regex ShapePattern();
}
