using System.Globalization;
using System.Text.Json;
using Microsoft.VisualBasic.FileIO;

namespace MedVlp.Data;

/// <summary>Options of <see cref="Manifest.Load(string, ManifestOptions?)"/>.</summary>
public sealed class ManifestOptions
{
    /// <summary>Check that every volume file or series folder exists (default true).</summary>
    public bool CheckFilesExist { get; init; } = true;

    /// <summary>Require non-empty report text on every entry (default false).</summary>
    public bool RequireReport { get; init; }

    /// <summary>The folder relative paths are resolved against; defaults to the manifest's folder.</summary>
    public string? BaseDirectory { get; init; }
}

/// <summary>
/// The list of examples a dataset is made of, read from CSV or JSON Lines and validated as a whole, so a training run
/// fails at once with every problem listed instead of hours later on one bad row.
/// </summary>
/// <remarks>
/// <para><b>CSV</b> (RFC 4180: a header row, fields quoted with <c>"</c> when they hold commas, quotes or line breaks):
/// a required <c>path</c> column (volume file or DICOM series folder) and optional <c>id</c>, <c>report</c> and
/// <c>split</c> columns; every other column is a label.</para>
/// <para><b>JSON Lines</b> (<c>.jsonl</c>): one object per line with a required <c>"path"</c>, optional <c>"id"</c>,
/// <c>"report"</c>, <c>"split"</c> strings and an optional <c>"labels"</c> object of strings, numbers or booleans.</para>
/// <para>Relative paths are resolved against the manifest's folder. Ids must be unique.</para>
/// </remarks>
public sealed class Manifest
{
    /// <summary>The most problems one exception lists.</summary>
    public const int MaxReportedProblems = 20;

    private static readonly string[] Reserved = ["path", "id", "report", "split"];

    private Manifest(string source, IReadOnlyList<ManifestEntry> entries)
    {
        Source = source;
        Entries = entries;
    }

    /// <summary>The file the manifest was read from.</summary>
    public string Source { get; }

    /// <summary>The entries, in file order.</summary>
    public IReadOnlyList<ManifestEntry> Entries { get; }

    /// <summary>The entries of one split (case-insensitive).</summary>
    public IReadOnlyList<ManifestEntry> Split(string split) =>
        [.. Entries.Where(e => string.Equals(e.Split, split, StringComparison.OrdinalIgnoreCase))];

    /// <summary>Reads and validates a <c>.csv</c> or <c>.jsonl</c> manifest.</summary>
    /// <exception cref="ManifestFormatException">The manifest has problems (all are listed, with lines and fields).</exception>
    /// <exception cref="FileNotFoundException">The manifest file does not exist.</exception>
    public static Manifest Load(string path, ManifestOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        options ??= new ManifestOptions();
        var full = System.IO.Path.GetFullPath(path);
        if (!File.Exists(full))
        {
            throw new FileNotFoundException($"The manifest {full} does not exist.", full);
        }

        var baseDir = options.BaseDirectory ?? System.IO.Path.GetDirectoryName(full) ?? ".";
        using var reader = new StreamReader(full);
        var ext = System.IO.Path.GetExtension(full).ToUpperInvariant();
        return ext switch
        {
            ".CSV" => Parse(reader, ManifestFileFormat.Csv, full, baseDir, options),
            ".JSONL" or ".NDJSON" => Parse(reader, ManifestFileFormat.JsonLines, full, baseDir, options),
            _ => throw new ManifestFormatException(full, [$"unknown manifest type \"{ext}\": use .csv or .jsonl"]),
        };
    }

    /// <summary>Parses a manifest from text.</summary>
    /// <param name="reader">The text.</param>
    /// <param name="format">CSV or JSON Lines.</param>
    /// <param name="source">A name for error messages (the file path).</param>
    /// <param name="baseDirectory">The folder relative paths are resolved against.</param>
    /// <param name="options">Validation options.</param>
    /// <exception cref="ManifestFormatException">The manifest has problems.</exception>
    public static Manifest Parse(TextReader reader, ManifestFileFormat format, string source, string baseDirectory, ManifestOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(reader);
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(baseDirectory);
        options ??= new ManifestOptions();
        var problems = new List<string>();
        var raw = format == ManifestFileFormat.Csv ? ReadCsv(reader, problems) : ReadJsonLines(reader, problems);
        var entries = new List<ManifestEntry>();
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var r in raw)
        {
            if (string.IsNullOrWhiteSpace(r.Path))
            {
                problems.Add($"line {r.Line}: field \"path\": empty; every entry needs a volume file or series folder");
                continue;
            }

            var path = System.IO.Path.GetFullPath(r.Path.Trim(), baseDirectory);
            if (options.CheckFilesExist && !File.Exists(path) && !Directory.Exists(path))
            {
                problems.Add($"line {r.Line}: field \"path\": {path} does not exist");
            }

            if (options.RequireReport && string.IsNullOrWhiteSpace(r.Report))
            {
                problems.Add($"line {r.Line}: field \"report\": empty, but reports are required");
            }

            var id = string.IsNullOrEmpty(r.Id) ? (entries.Count + 1).ToString(CultureInfo.InvariantCulture) : r.Id;
            if (ids.TryGetValue(id, out var firstLine))
            {
                problems.Add($"line {r.Line}: field \"id\": \"{id}\" was already used on line {firstLine}; ids must be unique");
            }
            else
            {
                ids[id] = r.Line;
            }

            entries.Add(new ManifestEntry { Id = id, Path = path, Report = r.Report ?? "", Split = r.Split ?? "", Labels = r.Labels, Line = r.Line });
        }

        if (problems.Count == 0 && entries.Count == 0)
        {
            problems.Add("no entries");
        }

        if (problems.Count > 0)
        {
            throw new ManifestFormatException(source, problems.Take(MaxReportedProblems).ToList());
        }

        return new Manifest(source, entries);
    }

    private sealed record RawEntry(int Line, string? Path, string? Id, string? Report, string? Split, Dictionary<string, string> Labels);

    private static List<RawEntry> ReadCsv(TextReader reader, List<string> problems)
    {
        var result = new List<RawEntry>();
        using var parser = new TextFieldParser(reader) { TextFieldType = FieldType.Delimited, HasFieldsEnclosedInQuotes = true, TrimWhiteSpace = false };
        parser.SetDelimiters(",");
        string[]? header;
        try
        {
            header = parser.ReadFields();
        }
        catch (MalformedLineException ex)
        {
            problems.Add($"line {ex.LineNumber}: the header row is not valid CSV ({ex.Message})");
            return result;
        }

        if (header is null)
        {
            problems.Add("line 1: empty file; a CSV manifest needs a header row with a \"path\" column");
            return result;
        }

        header = [.. header.Select(h => h.Trim().TrimStart('\uFEFF'))];
        var lower = header.Select(h => h.ToUpperInvariant()).ToArray();
        var duplicates = lower.GroupBy(h => h).Where(g => g.Count() > 1).Select(g => g.Key).ToArray();
        if (duplicates.Length > 0)
        {
            problems.Add($"line 1: duplicate column(s) {string.Join(", ", duplicates)}");
        }

        var pathCol = Array.IndexOf(lower, "PATH");
        if (pathCol < 0)
        {
            problems.Add($"line 1: no \"path\" column; the header has {string.Join(", ", header.Select(h => $"\"{h}\""))}");
            return result;
        }

        int idCol = Array.IndexOf(lower, "ID"), reportCol = Array.IndexOf(lower, "REPORT"), splitCol = Array.IndexOf(lower, "SPLIT");
        while (!parser.EndOfData)
        {
            var line = (int)parser.LineNumber;
            string[]? fields;
            try
            {
                fields = parser.ReadFields();
            }
            catch (MalformedLineException ex)
            {
                problems.Add($"line {ex.LineNumber}: not valid CSV (an unclosed quote?)");
                continue;
            }

            if (fields is null || (fields.Length == 1 && string.IsNullOrWhiteSpace(fields[0])))
            {
                continue;
            }

            if (fields.Length != header.Length)
            {
                problems.Add($"line {line}: {fields.Length} fields, but the header has {header.Length}");
                continue;
            }

            var labels = new Dictionary<string, string>(StringComparer.Ordinal);
            for (var c = 0; c < header.Length; c++)
            {
                if (!Reserved.Contains(header[c].ToLowerInvariant()))
                {
                    labels[header[c]] = fields[c];
                }
            }

            result.Add(new RawEntry(line, fields[pathCol], idCol >= 0 ? fields[idCol] : null, reportCol >= 0 ? fields[reportCol] : null,
                splitCol >= 0 ? fields[splitCol] : null, labels));
        }

        return result;
    }

    private static List<RawEntry> ReadJsonLines(TextReader reader, List<string> problems)
    {
        var result = new List<RawEntry>();
        var lineNumber = 0;
        while (reader.ReadLine() is { } text)
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(text))
            {
                continue;
            }

            JsonDocument doc;
            try
            {
                doc = JsonDocument.Parse(text);
            }
            catch (JsonException ex)
            {
                problems.Add($"line {lineNumber}: not valid JSON ({ex.Message})");
                continue;
            }

            using (doc)
            {
                if (doc.RootElement.ValueKind != JsonValueKind.Object)
                {
                    problems.Add($"line {lineNumber}: expected a JSON object, got {doc.RootElement.ValueKind}");
                    continue;
                }

                string? path = null, id = null, report = null, split = null;
                var labels = new Dictionary<string, string>(StringComparer.Ordinal);
                var ok = true;
                foreach (var p in doc.RootElement.EnumerateObject())
                {
                    switch (p.Name)
                    {
                        case "path" or "id" or "report" or "split":
                            if (p.Value.ValueKind != JsonValueKind.String)
                            {
                                problems.Add($"line {lineNumber}: field \"{p.Name}\": expected a string, got {p.Value.ValueKind}");
                                ok = false;
                                break;
                            }

                            var s = p.Value.GetString();
                            _ = p.Name switch { "path" => path = s, "id" => id = s, "report" => report = s, _ => split = s };
                            break;
                        case "labels":
                            if (p.Value.ValueKind != JsonValueKind.Object)
                            {
                                problems.Add($"line {lineNumber}: field \"labels\": expected an object of name: value, got {p.Value.ValueKind}");
                                ok = false;
                                break;
                            }

                            foreach (var l in p.Value.EnumerateObject())
                            {
                                if (l.Value.ValueKind is JsonValueKind.Object or JsonValueKind.Array or JsonValueKind.Null)
                                {
                                    problems.Add($"line {lineNumber}: field \"labels.{l.Name}\": expected a string, number or boolean, got {l.Value.ValueKind}");
                                    ok = false;
                                    continue;
                                }

                                labels[l.Name] = l.Value.ValueKind == JsonValueKind.String ? l.Value.GetString()! : l.Value.GetRawText();
                            }

                            break;
                        default:
                            problems.Add($"line {lineNumber}: unknown field \"{p.Name}\" (known: path, id, report, split, labels)");
                            ok = false;
                            break;
                    }
                }

                if (path is null && ok)
                {
                    problems.Add($"line {lineNumber}: field \"path\": missing");
                    ok = false;
                }

                if (ok)
                {
                    result.Add(new RawEntry(lineNumber, path, id, report, split, labels));
                }
            }
        }

        return result;
    }
}

/// <summary>The text formats a <see cref="Manifest"/> can be read from.</summary>
public enum ManifestFileFormat
{
    /// <summary>Comma-separated values with a header row.</summary>
    Csv,

    /// <summary>One JSON object per line.</summary>
    JsonLines,
}
