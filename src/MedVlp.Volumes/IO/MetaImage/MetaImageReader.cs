using System.Globalization;

namespace MedVlp.Volumes.IO.MetaImage;

/// <summary>
/// Reads ITK MetaImage volumes: <c>.mha</c> (header and data in one file) and <c>.mhd</c> with a separate data file,
/// raw or zlib-compressed (<c>CompressedData</c>), binary or ASCII, either byte order; <c>ElementDataFile</c> may be
/// <c>LOCAL</c>, a file name, <c>LIST</c> or a <c>%d</c> file pattern.
/// </summary>
/// <remarks>
/// MetaImage stores geometry in ITK's physical space, which is LPS: the affine is
/// <c>diag(-1, -1, 1) x [TransformMatrix^T x diag(ElementSpacing) | Offset]</c> (row n of <c>TransformMatrix</c> is the
/// direction of voxel axis n, as ITK reads it). A 2D image becomes a one-slice volume; a 4th dimension and
/// <c>ElementNumberOfChannels</c> become frames.
/// </remarks>
public static class MetaImageReader
{
    /// <summary>True when the path ends in <c>.mha</c> or <c>.mhd</c>.</summary>
    public static bool HasMetaImageExtension(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        return path.EndsWith(".mha", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".mhd", StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>Reads a MetaImage volume.</summary>
    /// <param name="path">A <c>.mha</c> or <c>.mhd</c> file.</param>
    /// <param name="options">Reading options, or <see langword="null"/> for the defaults.</param>
    /// <param name="cancellationToken">Cancels a long read.</param>
    /// <exception cref="FileNotFoundException">The header file does not exist.</exception>
    /// <exception cref="VolumeFormatException">The file is not a valid MetaImage, is truncated, or names a missing data file.</exception>
    public static Volume Read(string path, VolumeReadOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        options ??= VolumeReadOptions.Default;
        SafeFile.RequireRegular(path);
        var lines = TextHeader.Read(path, l => KeyOf(l).Equals("ElementDataFile", StringComparison.OrdinalIgnoreCase), "MetaImage", out var fileLength);
        var fields = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var n = 0;
        foreach (var line in lines)
        {
            n++;
            if (string.IsNullOrWhiteSpace(line.Text))
            {
                continue;
            }

            var eq = line.Text.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                throw new VolumeFormatException(path, $"header line {n}", $"\"{Clip(line.Text)}\" is not \"Key = Value\"; this is not a MetaImage header.");
            }

            fields[line.Text[..eq].Trim()] = line.Text[(eq + 1)..].Trim();
        }

        var dataStart = lines[^1].End;
        string Get(string key) => fields.TryGetValue(key, out var v) ? v : throw new VolumeFormatException(path, key, "is missing.");
        string? Opt(params string[] keys) => keys.Select(k => fields.TryGetValue(k, out var v) ? v : null).FirstOrDefault(v => v is not null);

        if (Opt("ObjectType") is { } objectType && !objectType.Equals("Image", StringComparison.OrdinalIgnoreCase))
        {
            throw new VolumeFormatException(path, "ObjectType", $"is \"{objectType}\"; only Image objects hold volumes.");
        }

        if (!int.TryParse(Get("NDims"), NumberStyles.Integer, CultureInfo.InvariantCulture, out var ndims) || ndims is < 1 or > 4)
        {
            throw new VolumeFormatException(path, "NDims", $"is \"{fields["NDims"]}\"; expected 1 to 4.");
        }

        var dims = TextHeader.Extents(Get("DimSize"), path, "DimSize", ndims);
        var type = ElementTypeOf(Get("ElementType"), path);
        long channels = 1;
        if (Opt("ElementNumberOfChannels") is { } ch
            && (!long.TryParse(ch, NumberStyles.Integer, CultureInfo.InvariantCulture, out channels) || channels < 1 || channels > 4096))
        {
            throw new VolumeFormatException(path, "ElementNumberOfChannels", $"is \"{ch}\"; expected 1 to 4096.");
        }

        var spatialDims = Math.Min(ndims, 3);
        var spacing = Enumerable.Repeat(1.0, 3).ToArray();
        if (Opt("ElementSpacing", "ElementSize") is { } sp)
        {
            var values = TextHeader.Numbers(sp, path, "ElementSpacing", ndims);
            for (var a = 0; a < spatialDims; a++)
            {
                spacing[a] = values[a] != 0 ? values[a] : throw new VolumeFormatException(path, "ElementSpacing", $"is \"{sp}\"; a spacing of 0 makes the geometry degenerate.");
            }
        }

        var origin = new double[3];
        if (Opt("Offset", "Position", "Origin") is { } off)
        {
            var values = TextHeader.Numbers(off, path, "Offset", ndims);
            for (var a = 0; a < spatialDims; a++)
            {
                origin[a] = values[a];
            }
        }

        var direction = new double[3, 3];
        for (var a = 0; a < 3; a++)
        {
            direction[a, a] = 1;
        }

        if (Opt("TransformMatrix", "Rotation", "Orientation") is { } tm)
        {
            var values = TextHeader.Numbers(tm, path, "TransformMatrix", ndims * ndims);
            for (var axis = 0; axis < spatialDims; axis++)
            {
                for (var world = 0; world < spatialDims; world++)
                {
                    // ITK: row `axis` of the stored matrix is the direction of voxel axis `axis`.
                    direction[world, axis] = values[(axis * ndims) + world];
                }
            }
        }

        var bigEndian = IsTrue(Opt("BinaryDataByteOrderMSB", "ElementByteOrderMSB"));
        var binary = Opt("BinaryData") is not { } b || IsTrue(b);
        var compressed = IsTrue(Opt("CompressedData"));
        long headerSize = 0;
        if (Opt("HeaderSize") is { } hs && (!long.TryParse(hs, NumberStyles.Integer, CultureInfo.InvariantCulture, out headerSize) || headerSize < -1))
        {
            throw new VolumeFormatException(path, "HeaderSize", $"is \"{hs}\"; expected -1 (data at the end) or a byte count.");
        }

        if (headerSize == -1 && (compressed || !binary))
        {
            throw new VolumeFormatException(path, "HeaderSize", "is -1 (data at the end of the file), which only uncompressed binary data allow.");
        }

        var sizes = new long[] { 1, 1, 1 };
        for (var a = 0; a < spatialDims; a++)
        {
            sizes[a] = dims[a];
        }

        var layout = new RawImageLayout
        {
            Sizes = sizes,
            Components = channels,
            OuterFrames = ndims == 4 ? [dims[3]] : [],
            Type = type,
            BigEndian = bigEndian,
            Direction = direction,
            Spacing = spacing,
            Origin = origin,
            Lps = true,
        };

        var pieces = DataPieces(path, Get("ElementDataFile"), dataStart, fileLength, headerSize, options);
        var encoding = !binary ? RawEncoding.Ascii : compressed ? RawEncoding.Zlib : RawEncoding.Raw;
        var metadata = new VolumeMetadata
        {
            SourcePath = path,
            Format = "metaimage",
            SourceDataType = type,
            Properties = new Dictionary<string, string>
            {
                ["AnatomicalOrientation"] = Opt("AnatomicalOrientation") ?? "",
                ["ElementDataFile"] = Get("ElementDataFile"),
                ["NDims"] = ndims.ToString(CultureInfo.InvariantCulture),
            },
        };
        return RawImage.Read(layout, pieces, encoding, path, metadata, options, cancellationToken);
    }

    /// <summary>Reads a volume on the thread pool.</summary>
    public static Task<Volume> ReadAsync(string path, VolumeReadOptions? options = null, CancellationToken cancellationToken = default) =>
        Task.Run(() => Read(path, options, cancellationToken), cancellationToken);

    private static List<RawImage.DataPiece> DataPieces(string path, string dataFile, long dataStart, long fileLength, long headerSize, VolumeReadOptions options)
    {
        if (dataFile.Equals("LOCAL", StringComparison.OrdinalIgnoreCase))
        {
            // Compare without adding: dataStart + headerSize may overflow for a hostile HeaderSize.
            if (headerSize > fileLength - dataStart)
            {
                throw new VolumeFormatException(path, "HeaderSize", $"is {headerSize}: the data would start beyond the end of the {fileLength}-byte file (the header ends at byte {dataStart}).");
            }

            return [new RawImage.DataPiece(path, headerSize == -1 ? -1 : dataStart + headerSize, fileLength)];
        }

        var names = new List<string>();
        var parts = dataFile.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0)
        {
            throw new VolumeFormatException(path, "ElementDataFile", "is empty; expected LOCAL, a file name, LIST or a %d pattern.");
        }

        if (parts[0].Equals("LIST", StringComparison.OrdinalIgnoreCase))
        {
            // File names follow the header, one or more per line, to the end of the file (read within the header budget).
            if (fileLength - dataStart > RawImage.MaxHeaderBytes)
            {
                throw new VolumeFormatException(path, "ElementDataFile", $"is LIST, and {fileLength - dataStart} bytes follow the header; a list of file names is expected to be shorter than {RawImage.MaxHeaderBytes} bytes.");
            }

            string body;
            using (var f = SafeFile.OpenRead(path, 1 << 14))
            {
                f.Position = dataStart;
                var bytes = new byte[fileLength - dataStart];
                f.ReadExactly(bytes);
                body = System.Text.Encoding.Latin1.GetString(bytes);
            }

            names.AddRange(body.Split([' ', '\t', '\r', '\n'], StringSplitOptions.RemoveEmptyEntries));
            if (names.Count == 0)
            {
                throw new VolumeFormatException(path, "ElementDataFile", "is LIST, but no file names follow the header.");
            }
        }
        else if (parts.Length >= 3 && parts[0].Contains('%', StringComparison.Ordinal))
        {
            names.AddRange(TextHeader.PatternNames(parts[0], parts[1..], path, "ElementDataFile"));
        }
        else
        {
            names.Add(dataFile);
        }

        var pieces = new List<RawImage.DataPiece>();
        foreach (var name in names)
        {
            var full = SafeFile.ResolveDataFile(path, name, "ElementDataFile", options.TrustedDataFolders);
            var len = new FileInfo(full).Length;
            if (headerSize > len)
            {
                throw new VolumeFormatException(path, "HeaderSize", $"is {headerSize}: the data would start beyond the end of the {len}-byte data file {name}.");
            }

            pieces.Add(new RawImage.DataPiece(full, headerSize == -1 ? -1 : headerSize, len));
        }

        return pieces;
    }

    private static VoxelDataType ElementTypeOf(string value, string path) => value.ToUpperInvariant() switch
    {
        "MET_UCHAR" => VoxelDataType.UInt8,
        "MET_CHAR" => VoxelDataType.Int8,
        "MET_USHORT" => VoxelDataType.UInt16,
        "MET_SHORT" => VoxelDataType.Int16,
        "MET_UINT" or "MET_ULONG" => VoxelDataType.UInt32,
        "MET_INT" or "MET_LONG" => VoxelDataType.Int32,
        "MET_ULONG_LONG" => VoxelDataType.UInt64,
        "MET_LONG_LONG" => VoxelDataType.Int64,
        "MET_FLOAT" => VoxelDataType.Float32,
        "MET_DOUBLE" => VoxelDataType.Float64,
        _ => throw new VolumeFormatException(path, "ElementType", $"is \"{value}\"; MedVlp reads MET_UCHAR, MET_CHAR, MET_USHORT, MET_SHORT, MET_UINT, MET_INT, MET_ULONG, MET_LONG, MET_ULONG_LONG, MET_LONG_LONG, MET_FLOAT and MET_DOUBLE."),
    };

    private static bool IsTrue(string? value) => value is not null && (value.Equals("True", StringComparison.OrdinalIgnoreCase) || value == "1");

    private static string KeyOf(string line)
    {
        var eq = line.IndexOf('=', StringComparison.Ordinal);
        return eq <= 0 ? "" : line[..eq].Trim();
    }

    private static string Clip(string s) => s.Length > 60 ? s[..60] + "..." : s;
}
