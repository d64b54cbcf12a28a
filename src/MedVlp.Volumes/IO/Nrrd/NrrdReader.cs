using System.Globalization;

namespace MedVlp.Volumes.IO.Nrrd;

/// <summary>
/// Reads NRRD volumes: <c>.nrrd</c> (attached data) and <c>.nhdr</c> with detached data files (one file, <c>LIST</c>
/// or a <c>%d</c> pattern), encodings raw, gzip and ascii, either endianness, <c>line skip</c> and <c>byte skip</c>.
/// </summary>
/// <remarks>
/// Geometry comes from <c>space directions</c> and <c>space origin</c> (or <c>spacings</c>). Spaces
/// <c>right-anterior-superior</c>/<c>RAS</c> are used as they are, <c>left-posterior-superior</c>/<c>LPS</c> have x and y negated,
/// <c>left-anterior-superior</c>/<c>LAS</c> x negated. An unnamed space (only <c>space dimension</c>) or no space at all is taken
/// as ITK's physical space, LPS, as ITK does. Non-spatial axes (<c>space directions</c> entry <c>none</c>) before the spatial
/// ones are interleaved components, after them outer frames; both become frames. A 2D image becomes a one-slice volume.
/// </remarks>
public static class NrrdReader
{
    /// <summary>True when the path ends in <c>.nrrd</c> or <c>.nhdr</c>.</summary>
    public static bool HasNrrdExtension(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        return path.EndsWith(".nrrd", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".nhdr", StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>Reads a NRRD volume.</summary>
    /// <param name="path">A <c>.nrrd</c> or <c>.nhdr</c> file.</param>
    /// <param name="options">Reading options, or <see langword="null"/> for the defaults.</param>
    /// <param name="cancellationToken">Cancels a long read.</param>
    /// <exception cref="FileNotFoundException">The header file does not exist.</exception>
    /// <exception cref="VolumeFormatException">The file is not a valid NRRD, is truncated, or names a missing data file.</exception>
    public static Volume Read(string path, VolumeReadOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        options ??= VolumeReadOptions.Default;
        SafeFile.RequireRegular(path);

        var lines = TextHeader.Read(path, l => l.Length == 0, "NRRD", out var fileLength, endAtEof: true);
        if (lines.Count == 0 || !lines[0].Text.StartsWith("NRRD000", StringComparison.Ordinal))
        {
            throw new VolumeFormatException(path, "magic", "the file does not start with \"NRRD000x\"; this is not a NRRD file.");
        }

        // An .nhdr may simply end without a blank line; the last line then is the end of the header.
        var fields = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var listedFiles = new List<string>();
        var inList = false;
        foreach (var line in lines.Skip(1))
        {
            if (line.Text.Length == 0 || line.Text.StartsWith('#'))
            {
                continue;
            }

            if (inList)
            {
                listedFiles.Add(line.Text.Trim());
                continue;
            }

            var colon = line.Text.IndexOf(": ", StringComparison.Ordinal);
            var pair = line.Text.IndexOf(":=", StringComparison.Ordinal);
            if (pair > 0 && (colon < 0 || pair < colon))
            {
                continue; // a key/value pair, not a field
            }

            if (colon <= 0)
            {
                throw new VolumeFormatException(path, "header", $"the line \"{Clip(line.Text)}\" is not \"field: value\".");
            }

            var key = line.Text[..colon].Trim();
            var value = line.Text[(colon + 2)..].Trim();
            fields[key] = value;
            if ((key.Equals("data file", StringComparison.OrdinalIgnoreCase) || key.Equals("datafile", StringComparison.OrdinalIgnoreCase))
                && value.StartsWith("LIST", StringComparison.OrdinalIgnoreCase))
            {
                inList = true;
            }
        }

        var headerEnd = lines[^1].End;
        string Get(string key) => fields.TryGetValue(key, out var v) ? v : throw new VolumeFormatException(path, key, "is missing.");
        string? Opt(params string[] keys) => keys.Select(k => fields.TryGetValue(k, out var v) ? v : null).FirstOrDefault(v => v is not null);

        if (!int.TryParse(Get("dimension"), NumberStyles.Integer, CultureInfo.InvariantCulture, out var dimension) || dimension is < 1 or > 16)
        {
            throw new VolumeFormatException(path, "dimension", $"is \"{fields["dimension"]}\"; expected 1 to 16.");
        }

        var sizes = TextHeader.Extents(Get("sizes"), path, "sizes", dimension);
        var type = TypeOf(Get("type"), path);
        var size = type.SizeInBytes();
        var encoding = Get("encoding").ToLowerInvariant() switch
        {
            "raw" => RawEncoding.Raw,
            "gzip" or "gz" => RawEncoding.Gzip,
            "ascii" or "text" or "txt" => RawEncoding.Ascii,
            var e => throw new VolumeFormatException(path, "encoding", $"is \"{e}\"; MedVlp reads raw, gzip and ascii."),
        };

        var bigEndian = false;
        if (size > 1 && encoding != RawEncoding.Ascii)
        {
            bigEndian = Opt("endian") switch
            {
                "big" => true,
                "little" => false,
                null => throw new VolumeFormatException(path, "endian", $"is missing; it is required for {Get("type")} data."),
                var e => throw new VolumeFormatException(path, "endian", $"is \"{e}\"; expected little or big."),
            };
        }

        // Geometry: which axes are spatial, their directions, the space's handedness.
        var (lps, flipXOnly, spaceDim) = SpaceOf(Opt("space"), Opt("space dimension"), path);
        var directions = new double[dimension][];
        if (Opt("space directions") is { } sd)
        {
            var vectors = ParseVectors(sd, path, "space directions");
            if (vectors.Count != dimension)
            {
                throw new VolumeFormatException(path, "space directions", $"has {vectors.Count} entries; expected one per axis ({dimension}).");
            }

            for (var a = 0; a < dimension; a++)
            {
                if (vectors[a] is { } v && v.Length != spaceDim)
                {
                    throw new VolumeFormatException(path, "space directions", $"entry {a} has {v.Length} components; the space has {spaceDim}.");
                }

                directions[a] = vectors[a]!;
            }
        }
        else
        {
            // No space: spatial axes are the "domain"/"space" kinds (or all), spaced by "spacings".
            var kinds = Opt("kinds")?.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            var spacings = Opt("spacings") is { } s ? s.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries) : null;
            var spatialIndex = 0;
            for (var a = 0; a < dimension; a++)
            {
                var kind = kinds is not null && a < kinds.Length ? kinds[a].ToLowerInvariant() : "domain";
                if (kind is "domain" or "space" or "time" && spatialIndex < 3)
                {
                    var step = 1.0;
                    if (spacings is not null && a < spacings.Length && spacings[a] != "nan" && spacings[a] != "NaN")
                    {
                        step = TextHeader.Numbers(spacings[a], path, "spacings")[0];
                    }

                    var v = new double[3];
                    v[spatialIndex++] = step;
                    directions[a] = v;
                }
            }

            spaceDim = 3;
        }

        var spatialAxes = Enumerable.Range(0, dimension).Where(a => directions[a] is not null).ToArray();
        if (spatialAxes.Length is < 1 or > 3)
        {
            throw new VolumeFormatException(path, "space directions", $"name {spatialAxes.Length} spatial axes; expected 1 to 3.");
        }

        if (spatialAxes[^1] - spatialAxes[0] != spatialAxes.Length - 1)
        {
            throw new VolumeFormatException(path, "space directions", "the spatial axes are not contiguous; MedVlp reads non-spatial axes only before or after them.");
        }

        long components = 1;
        for (var a = 0; a < spatialAxes[0]; a++)
        {
            components = RawImage.Multiply(components, sizes[a]);
        }

        var outer = Enumerable.Range(spatialAxes[^1] + 1, dimension - spatialAxes[^1] - 1).Select(a => sizes[a]).ToArray();
        var voxelSizes = new long[] { 1, 1, 1 };
        var direction = new double[3, 3];
        var spacing = new double[] { 1, 1, 1 };
        var used = new bool[3];
        for (var n = 0; n < spatialAxes.Length; n++)
        {
            var a = spatialAxes[n];
            voxelSizes[n] = sizes[a];
            var v = directions[a];
            var norm = Math.Sqrt(v.Sum(x => x * x));
            if (norm == 0)
            {
                throw new VolumeFormatException(path, "space directions", $"the direction of axis {a} is the zero vector.");
            }

            spacing[n] = norm;
            for (var r = 0; r < Math.Min(3, v.Length); r++)
            {
                direction[r, n] = v[r] / norm;
            }
        }

        // Missing world axes (2D space) and missing voxel axes get the remaining unit directions.
        for (var n = 0; n < 3; n++)
        {
            for (var r = 0; r < 3; r++)
            {
                if (Math.Abs(direction[r, n]) > 0.5)
                {
                    used[r] = true;
                }
            }
        }

        for (var n = spatialAxes.Length; n < 3; n++)
        {
            var r = Array.IndexOf(used, false);
            direction[r < 0 ? n : r, n] = 1;
            if (r >= 0)
            {
                used[r] = true;
            }
        }

        var origin = new double[3];
        if (Opt("space origin") is { } so)
        {
            var vectors = ParseVectors(so, path, "space origin");
            if (vectors.Count != 1 || vectors[0] is null || vectors[0]!.Length != spaceDim)
            {
                throw new VolumeFormatException(path, "space origin", $"is \"{Clip(so)}\"; expected one vector of {spaceDim} numbers.");
            }

            for (var r = 0; r < Math.Min(3, spaceDim); r++)
            {
                origin[r] = vectors[0]![r];
            }
        }

        var layout = new RawImageLayout
        {
            Sizes = voxelSizes,
            Components = components,
            OuterFrames = outer,
            Type = type,
            BigEndian = bigEndian,
            Direction = direction,
            Spacing = spacing,
            Origin = origin,
            Lps = lps,
            FlipXOnly = flipXOnly,
        };

        var lineSkip = SkipOf(Opt("line skip", "lineskip"), path, "line skip", allowMinusOne: false);
        var byteSkip = SkipOf(Opt("byte skip", "byteskip"), path, "byte skip", allowMinusOne: true);
        if (byteSkip == -1 && encoding != RawEncoding.Raw)
        {
            throw new VolumeFormatException(path, "byte skip", "is -1 (data at the end of the file), which only raw encoding allows.");
        }

        var pieces = DataPieces(path, Opt("data file", "datafile"), listedFiles, headerEnd, fileLength, lineSkip, byteSkip, options, cancellationToken);
        var metadata = new VolumeMetadata
        {
            SourcePath = path,
            Format = "nrrd",
            SourceDataType = type,
            Description = Opt("content"),
            Properties = new Dictionary<string, string>
            {
                ["space"] = Opt("space") ?? "",
                ["encoding"] = Get("encoding"),
                ["dimension"] = dimension.ToString(CultureInfo.InvariantCulture),
            },
        };
        return RawImage.Read(layout, pieces, encoding, path, metadata, options, cancellationToken);
    }

    /// <summary>Reads a volume on the thread pool.</summary>
    public static Task<Volume> ReadAsync(string path, VolumeReadOptions? options = null, CancellationToken cancellationToken = default) =>
        Task.Run(() => Read(path, options, cancellationToken), cancellationToken);

    private static List<RawImage.DataPiece> DataPieces(string path, string? dataFile, List<string> listed, long headerEnd, long fileLength, long lineSkip, long byteSkip,
        VolumeReadOptions options, CancellationToken cancellationToken)
    {
        var names = new List<string>();
        if (dataFile is null)
        {
            names.Add(path);
        }
        else
        {
            var parts = dataFile.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length == 0)
            {
                throw new VolumeFormatException(path, "data file", "is empty; expected a file name, LIST or a %d pattern.");
            }

            if (parts[0].Equals("LIST", StringComparison.OrdinalIgnoreCase))
            {
                if (listed.Count == 0)
                {
                    throw new VolumeFormatException(path, "data file", "is LIST, but no file names follow it.");
                }

                names.AddRange(listed);
            }
            else if (parts.Length >= 4 && parts[0].Contains('%', StringComparison.Ordinal))
            {
                names.AddRange(TextHeader.PatternNames(parts[0], parts[1..4], path, "data file"));
            }
            else
            {
                names.Add(dataFile);
            }
        }

        var pieces = new List<RawImage.DataPiece>();
        foreach (var name in names)
        {
            var attached = dataFile is null;
            var full = attached ? path : SafeFile.ResolveDataFile(path, name, "data file", options.TrustedDataFolders);
            var len = attached ? fileLength : new FileInfo(full).Length;
            var start = attached ? headerEnd : 0;
            if (lineSkip > 0)
            {
                start = SkipLines(full, start, len, lineSkip, path, cancellationToken);
            }

            // Compare without adding: start + byteSkip may overflow for a hostile byte skip.
            if (byteSkip > len - start)
            {
                throw new VolumeFormatException(path, "byte skip", $"is {byteSkip}: the data would start beyond the end of the {len}-byte file {name} (the skip starts at byte {start}).");
            }

            pieces.Add(new RawImage.DataPiece(full, byteSkip == -1 ? -1 : start + byteSkip, len));
        }

        return pieces;
    }

    /// <summary>Skips <paramref name="lines"/> lines from <paramref name="start"/>, reading no further than the file's length.</summary>
    private static long SkipLines(string file, long start, long length, long lines, string path, CancellationToken cancellationToken)
    {
        if (lines > length - start)
        {
            throw new VolumeFormatException(path, "line skip", $"asks to skip {lines} lines, but only {Math.Max(0, length - start)} bytes follow in {file}.");
        }

        using var f = SafeFile.OpenRead(file, 1 << 16);
        f.Position = start;
        var buffer = new byte[1 << 16];
        var seen = 0L;
        var pos = start;
        while (seen < lines && pos < length)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var got = f.Read(buffer, 0, (int)Math.Min(buffer.Length, length - pos));
            if (got <= 0)
            {
                break;
            }

            for (var n = 0; n < got; n++)
            {
                if (buffer[n] == '\n' && ++seen == lines)
                {
                    return pos + n + 1;
                }
            }

            pos += got;
        }

        throw new VolumeFormatException(path, "line skip", $"asks to skip {lines} lines, but {file} has only {seen}.");
    }

    private static long SkipOf(string? value, string path, string field, bool allowMinusOne)
    {
        if (value is null)
        {
            return 0;
        }

        if (!long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) || v < (allowMinusOne ? -1 : 0))
        {
            throw new VolumeFormatException(path, field, $"is \"{value}\"; expected a non-negative count{(allowMinusOne ? " or -1" : "")}.");
        }

        return v;
    }

    private static (bool Lps, bool FlipXOnly, int SpaceDim) SpaceOf(string? space, string? spaceDimension, string path)
    {
        if (space is not null)
        {
            return space.ToLowerInvariant() switch
            {
                "right-anterior-superior" or "ras" => (false, false, 3),
                "left-anterior-superior" or "las" => (true, true, 3),
                "left-posterior-superior" or "lps" => (true, false, 3),
                "right-anterior-superior-time" or "ras-time" => (false, false, 4),
                "left-anterior-superior-time" or "las-time" => (true, true, 4),
                "left-posterior-superior-time" or "lps-time" => (true, false, 4),
                "scanner-xyz" or "3d-right-handed" or "3d-left-handed" => (true, false, 3),
                "scanner-xyz-time" or "3d-right-handed-time" or "3d-left-handed-time" => (true, false, 4),
                _ => throw new VolumeFormatException(path, "space", $"is \"{space}\", which is not a NRRD space name."),
            };
        }

        if (spaceDimension is not null)
        {
            if (!int.TryParse(spaceDimension, NumberStyles.Integer, CultureInfo.InvariantCulture, out var d) || d is < 1 or > 4)
            {
                throw new VolumeFormatException(path, "space dimension", $"is \"{spaceDimension}\"; expected 1 to 4.");
            }

            return (true, false, d);
        }

        return (true, false, 3);
    }

    /// <summary>Parses "(x,y,z) (x,y,z) none ..." into vectors (null for none).</summary>
    private static List<double[]?> ParseVectors(string value, string path, string field)
    {
        var result = new List<double[]?>();
        var i = 0;
        while (i < value.Length)
        {
            if (char.IsWhiteSpace(value[i]))
            {
                i++;
                continue;
            }

            if (value[i] == '(')
            {
                var close = value.IndexOf(')', i);
                if (close < 0)
                {
                    throw new VolumeFormatException(path, field, $"\"{Clip(value)}\" has an unclosed \"(\".");
                }

                result.Add(TextHeader.Numbers(value[(i + 1)..close], path, field));
                i = close + 1;
            }
            else if (string.Compare(value, i, "none", 0, 4, StringComparison.OrdinalIgnoreCase) == 0)
            {
                result.Add(null);
                i += 4;
            }
            else
            {
                throw new VolumeFormatException(path, field, $"\"{Clip(value)}\" is not a list of (x,y,z) vectors and \"none\".");
            }
        }

        return result;
    }

    private static VoxelDataType TypeOf(string value, string path) => value.ToLowerInvariant() switch
    {
        "signed char" or "int8" or "int8_t" => VoxelDataType.Int8,
        "uchar" or "unsigned char" or "uint8" or "uint8_t" => VoxelDataType.UInt8,
        "short" or "short int" or "signed short" or "signed short int" or "int16" or "int16_t" => VoxelDataType.Int16,
        "ushort" or "unsigned short" or "unsigned short int" or "uint16" or "uint16_t" => VoxelDataType.UInt16,
        "int" or "signed int" or "int32" or "int32_t" => VoxelDataType.Int32,
        "uint" or "unsigned int" or "uint32" or "uint32_t" => VoxelDataType.UInt32,
        "longlong" or "long long" or "long long int" or "signed long long" or "signed long long int" or "int64" or "int64_t" => VoxelDataType.Int64,
        "ulonglong" or "unsigned long long" or "unsigned long long int" or "uint64" or "uint64_t" => VoxelDataType.UInt64,
        "float" => VoxelDataType.Float32,
        "double" => VoxelDataType.Float64,
        _ => throw new VolumeFormatException(path, "type", $"is \"{value}\"; MedVlp reads the integer types, float and double (not block)."),
    };

    private static string Clip(string s) => s.Length > 60 ? s[..60] + "..." : s;
}
