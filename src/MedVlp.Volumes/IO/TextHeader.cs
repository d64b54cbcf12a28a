using System.Text;

namespace MedVlp.Volumes.IO;

/// <summary>Reads the text header at the start of a MetaImage or NRRD file, line by line, with byte offsets.</summary>
internal static class TextHeader
{
    /// <summary>One header line without its line ending, and the byte offset just past its end.</summary>
    public readonly record struct Line(string Text, long End);

    /// <summary>
    /// Reads at most <see cref="RawImage.MaxHeaderBytes"/> bytes and splits them into lines until
    /// <paramref name="isLast"/> says a line ends the header (it is included), or the file ends when <paramref name="endAtEof"/>.
    /// </summary>
    /// <exception cref="VolumeFormatException">No such line within the limit.</exception>
    public static List<Line> Read(string path, Func<string, bool> isLast, string what, out long fileLength, bool endAtEof = false)
    {
        byte[] bytes;
        using (var f = SafeFile.OpenRead(path, 1 << 14))
        {
            fileLength = f.Length;
            bytes = new byte[(int)Math.Min(fileLength, RawImage.MaxHeaderBytes)];
            f.ReadExactly(bytes);
        }

        var lines = new List<Line>();
        var start = 0;
        while (start < bytes.Length)
        {
            var nl = Array.IndexOf(bytes, (byte)'\n', start);
            var end = nl < 0 ? bytes.Length : nl;
            var textEnd = end > start && bytes[end - 1] == '\r' ? end - 1 : end;
            var text = Encoding.Latin1.GetString(bytes, start, textEnd - start);
            var line = new Line(text, nl < 0 ? end : end + 1);
            lines.Add(line);
            if (isLast(text))
            {
                return lines;
            }

            if (nl < 0)
            {
                if (endAtEof && fileLength <= RawImage.MaxHeaderBytes)
                {
                    return lines;
                }

                break;
            }

            start = nl + 1;
        }

        if (endAtEof && fileLength <= RawImage.MaxHeaderBytes)
        {
            return lines;
        }

        var limit = fileLength > RawImage.MaxHeaderBytes ? $" within its first {RawImage.MaxHeaderBytes} bytes" : "";
        throw new VolumeFormatException(path, "header", $"the {what} header does not end{limit}; the file is truncated or not a {what} file.");
    }

    /// <summary>Parses whitespace-separated numbers; throws naming the field on anything else.</summary>
    public static double[] Numbers(string value, string path, string field, int? count = null)
    {
        var parts = value.Split([' ', '\t', ','], StringSplitOptions.RemoveEmptyEntries);
        var result = new double[parts.Length];
        for (var n = 0; n < parts.Length; n++)
        {
            if (!double.TryParse(parts[n], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out result[n]) || !double.IsFinite(result[n]))
            {
                throw new VolumeFormatException(path, field, $"\"{value}\" is not a list of finite numbers.");
            }
        }

        if (count is { } c && result.Length < c)
        {
            throw new VolumeFormatException(path, field, $"\"{value}\" has {result.Length} numbers; expected {c}.");
        }

        return result;
    }

    /// <summary>Parses positive integer extents.</summary>
    public static long[] Extents(string value, string path, string field, int count)
    {
        var parts = value.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length < count)
        {
            throw new VolumeFormatException(path, field, $"\"{value}\" has {parts.Length} extents; expected {count}.");
        }

        var result = new long[count];
        for (var n = 0; n < count; n++)
        {
            if (!long.TryParse(parts[n], System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out result[n]) || result[n] < 1 || result[n] > int.MaxValue)
            {
                throw new VolumeFormatException(path, field, $"extent {n} is \"{parts[n]}\"; expected an integer 1 to {int.MaxValue}.");
            }
        }

        return result;
    }

    /// <summary>The file names of a <c>%d</c> pattern with its "min max [step]" numbers (MetaImage, NRRD).</summary>
    public static List<string> PatternNames(string pattern, string[] numbers, string path, string field)
    {
        var nums = Numbers(string.Join(' ', numbers.Take(3)), path, field, 2);
        foreach (var x in nums)
        {
            if (x != Math.Floor(x) || Math.Abs(x) > 1e15)
            {
                throw new VolumeFormatException(path, field, $"the pattern numbers \"{string.Join(' ', numbers)}\" must be integers of at most 15 digits.");
            }
        }

        var (min, max, step) = ((long)nums[0], (long)nums[1], nums.Length > 2 ? (long)nums[2] : 1);
        if (step == 0 || (max - min) / step < 0 || (max - min) / step > MaxPatternFiles)
        {
            throw new VolumeFormatException(path, field, $"the pattern range {min}..{max} step {step} is not a sensible list of files (at most {MaxPatternFiles + 1}).");
        }

        var names = new List<string>();
        for (var i = min; step > 0 ? i <= max : i >= max; i += step)
        {
            names.Add(FormatPattern(pattern, i, path, field));
        }

        return names;
    }

    /// <summary>The most files (minus one) a <c>%d</c> pattern may name.</summary>
    public const long MaxPatternFiles = 100_000;

    /// <summary>Expands a printf-style file pattern (<c>%d</c>, <c>%03d</c>, ...) for index <paramref name="i"/>.</summary>
    public static string FormatPattern(string pattern, long i, string path, string field)
    {
        var p = pattern.IndexOf('%', StringComparison.Ordinal);
        if (p < 0)
        {
            throw new VolumeFormatException(path, field, $"the file pattern \"{pattern}\" has no %d.");
        }

        var q = p + 1;
        var zero = q < pattern.Length && pattern[q] == '0';
        var width = 0;
        while (q < pattern.Length && char.IsAsciiDigit(pattern[q]))
        {
            width = (width * 10) + (pattern[q] - '0');
            q++;
            if (width > 32)
            {
                throw new VolumeFormatException(path, field, $"the file pattern \"{pattern}\" has an absurd field width.");
            }
        }

        if (q >= pattern.Length || (pattern[q] != 'd' && pattern[q] != 'i' && pattern[q] != 'u'))
        {
            throw new VolumeFormatException(path, field, $"the file pattern \"{pattern}\" must use an integer format such as %03d.");
        }

        var number = i.ToString(System.Globalization.CultureInfo.InvariantCulture);
        number = zero ? number.PadLeft(width, '0') : number.PadLeft(width, ' ');
        return pattern[..p] + number + pattern[(q + 1)..];
    }
}
