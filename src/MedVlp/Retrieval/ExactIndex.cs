using System.IO.MemoryMappedFiles;
using System.Numerics.Tensors;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using MedVlp.Losses;

namespace MedVlp.Retrieval;

/// <summary>Options of <see cref="ExactIndex.Build"/>.</summary>
public sealed class ExactIndexBuildOptions
{
    /// <summary>The element type of the stored matrix (default float32).</summary>
    public IndexElementType ElementType { get; init; } = IndexElementType.Float32;

    /// <summary>The fingerprint of the model the embeddings were made with, kept in <c>index.json</c> (optional).</summary>
    public string? ModelFingerprint { get; init; }
}

/// <summary>
/// An exact (brute-force) cosine top-k index over case embeddings: a memory-mapped matrix of L2-normalised rows, searched
/// by a fused, multi-threaded SIMD kernel (<see cref="Similarity.TopKDotProducts(ReadOnlySpan{float}, ReadOnlySpan{float}, int, int, Span{int}, Span{float}, int)"/>).
/// Safe for concurrent searches.
/// </summary>
/// <remarks>
/// <para>An index is a folder: <c>vectors.npy</c> (a standard NumPy file, float32 or float16, <c>rows x dimension</c>, rows
/// normalised, so <c>numpy.load("vectors.npy", mmap_mode="r")</c> opens the same matrix), <c>ids.txt</c> (one id per
/// line, in row order), <c>records.jsonl</c> (source path and report per row) and <c>index.json</c> (counts, element
/// type, model fingerprint). Files are written to temporary names and renamed, so a crash never leaves half an index.</para>
/// </remarks>
public sealed class ExactIndex : IDisposable
{
    /// <summary>File names inside an index folder.</summary>
    public const string VectorsFileName = "vectors.npy", IdsFileName = "ids.txt", RecordsFileName = "records.jsonl", InfoFileName = "index.json";

    /// <summary>The <c>format</c> value of <c>index.json</c>.</summary>
    public const string Format = "medvlp.exact_index";

    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;
    private readonly unsafe byte* _data;
    private readonly RecordInfo[] _records;
    private readonly Dictionary<string, int> _rows;
    private bool _disposed;

    private unsafe ExactIndex(string directory, IndexInfo info, string[] ids, RecordInfo[] records, IndexElementType type, long dataOffset)
    {
        Directory = directory;
        Ids = ids;
        _records = records;
        ElementType = type;
        Dimensions = info.Dimensions;
        ModelFingerprint = info.ModelFingerprint;
        _rows = new Dictionary<string, int>(ids.Length, StringComparer.Ordinal);
        for (var r = 0; r < ids.Length; r++)
        {
            _rows[ids[r]] = r;
        }

        var path = Path.Combine(directory, VectorsFileName);
        _file = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        _view = _file.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        byte* pointer = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
        _data = pointer + _view.PointerOffset + dataOffset;
    }

    /// <summary>The index folder.</summary>
    public string Directory { get; }

    /// <summary>The case ids, in row order.</summary>
    public IReadOnlyList<string> Ids { get; }

    /// <summary>The number of cases.</summary>
    public int Count => Ids.Count;

    /// <summary>The embedding width.</summary>
    public int Dimensions { get; }

    /// <summary>The element type of the stored matrix.</summary>
    public IndexElementType ElementType { get; }

    /// <summary>The fingerprint of the model the embeddings came from (null when not recorded).</summary>
    public string? ModelFingerprint { get; }

    /// <summary>Writes an index folder from records (their embeddings are L2-normalised on the way).</summary>
    /// <param name="directory">The folder (created if needed; an index already there is replaced).</param>
    /// <param name="records">The cases; ids must be unique and free of line breaks, embeddings of one width.</param>
    /// <param name="options">Element type and model fingerprint.</param>
    /// <param name="cancellationToken">Stops the build (nothing is replaced then).</param>
    /// <returns>The number of rows written.</returns>
    public static int Build(string directory, IEnumerable<CaseRecord> records, ExactIndexBuildOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentNullException.ThrowIfNull(records);
        options ??= new ExactIndexBuildOptions();
        System.IO.Directory.CreateDirectory(directory);
        var vectorsTmp = Path.Combine(directory, VectorsFileName + ".tmp");
        var idsTmp = Path.Combine(directory, IdsFileName + ".tmp");
        var recordsTmp = Path.Combine(directory, RecordsFileName + ".tmp");
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var dimension = -1;
        var rows = 0;
        using (var vectors = new FileStream(vectorsTmp, FileMode.Create, FileAccess.ReadWrite, FileShare.None, 1 << 20))
        using (var ids = new StreamWriter(idsTmp, false, new UTF8Encoding(false)))
        using (var meta = new StreamWriter(recordsTmp, false, new UTF8Encoding(false)))
        {
            vectors.Write(new byte[NpyFormat.HeaderLength]);
            float[] normalised = [];
            Half[] halves = [];
            foreach (var record in records)
            {
                cancellationToken.ThrowIfCancellationRequested();
                ArgumentNullException.ThrowIfNull(record, nameof(records));
                if (string.IsNullOrEmpty(record.Id) || record.Id.AsSpan().ContainsAny('\n', '\r'))
                {
                    throw new ArgumentException($"Row {rows}: the id \"{record.Id}\" is empty or holds a line break.", nameof(records));
                }

                if (!seen.Add(record.Id))
                {
                    throw new ArgumentException($"Row {rows}: the id \"{record.Id}\" appears twice; ids must be unique.", nameof(records));
                }

                var embedding = record.Embedding.Span;
                if (dimension < 0)
                {
                    dimension = embedding.Length;
                    if (dimension == 0)
                    {
                        throw new ArgumentException($"Case \"{record.Id}\" has an empty embedding.", nameof(records));
                    }

                    normalised = new float[dimension];
                    halves = new Half[dimension];
                }
                else if (embedding.Length != dimension)
                {
                    throw new ArgumentException($"Case \"{record.Id}\" has an embedding of width {embedding.Length}, the others {dimension}.", nameof(records));
                }

                var norm = TensorPrimitives.Norm(embedding);
                if (!(norm > 0) || !float.IsFinite(norm))
                {
                    throw new ArgumentException($"Case \"{record.Id}\" has an embedding of norm {norm}; it cannot be normalised.", nameof(records));
                }

                TensorPrimitives.Divide(embedding, norm, normalised);
                if (options.ElementType == IndexElementType.Float32)
                {
                    vectors.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(normalised.AsSpan()));
                }
                else
                {
                    TensorPrimitives.ConvertToHalf(normalised, halves);
                    vectors.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(halves.AsSpan()));
                }

                ids.Write(record.Id);
                ids.Write('\n');
                meta.Write(JsonSerializer.Serialize(new RecordInfo(record.SourcePath, record.Report)));
                meta.Write('\n');
                rows++;
            }

            if (rows == 0)
            {
                throw new ArgumentException("An index needs at least one case.", nameof(records));
            }

            vectors.Position = 0;
            vectors.Write(NpyFormat.Header(options.ElementType, rows, dimension));
            vectors.Flush(flushToDisk: true);
        }

        var info = new IndexInfo { Format = Format, Count = rows, Dimensions = dimension, ElementType = options.ElementType == IndexElementType.Float32 ? "float32" : "float16", ModelFingerprint = options.ModelFingerprint };
        var infoTmp = Path.Combine(directory, InfoFileName + ".tmp");
        File.WriteAllText(infoTmp, JsonSerializer.Serialize(info, JsonOptions));
        File.Move(vectorsTmp, Path.Combine(directory, VectorsFileName), overwrite: true);
        File.Move(idsTmp, Path.Combine(directory, IdsFileName), overwrite: true);
        File.Move(recordsTmp, Path.Combine(directory, RecordsFileName), overwrite: true);
        File.Move(infoTmp, Path.Combine(directory, InfoFileName), overwrite: true);
        return rows;
    }

    /// <summary>Opens an index folder written by <see cref="Build"/> (the matrix is memory-mapped, not read).</summary>
    /// <exception cref="InvalidDataException">A file is missing a field or the files disagree.</exception>
    public static ExactIndex Open(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        if (!System.IO.Directory.Exists(directory))
        {
            throw new DirectoryNotFoundException($"Index folder {directory} does not exist.");
        }

        var infoPath = Path.Combine(directory, InfoFileName);
        if (!File.Exists(infoPath))
        {
            throw new FileNotFoundException($"{directory} is not a MedVlp index: {InfoFileName} is missing.", infoPath);
        }

        IndexInfo info;
        try
        {
            info = JsonSerializer.Deserialize<IndexInfo>(File.ReadAllText(infoPath), JsonOptions) ?? throw new InvalidDataException($"{infoPath}: empty.");
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"{infoPath}: not valid JSON ({ex.Message}).", ex);
        }

        if (info.Format != Format)
        {
            throw new InvalidDataException($"{infoPath}: field \"format\": expected \"{Format}\", found \"{info.Format}\".");
        }

        var (type, rows, columns, offset) = NpyFormat.ReadHeader(Path.Combine(directory, VectorsFileName));
        if (rows != info.Count || columns != info.Dimensions)
        {
            throw new InvalidDataException($"{directory}: {VectorsFileName} is ({rows}, {columns}) but {InfoFileName} says count {info.Count}, dimensions {info.Dimensions}.");
        }

        var idsPath = Path.Combine(directory, IdsFileName);
        var ids = File.ReadAllLines(idsPath);
        if (ids.Length != rows)
        {
            throw new InvalidDataException($"{idsPath}: {ids.Length} ids for {rows} rows of {VectorsFileName}.");
        }

        var recordsPath = Path.Combine(directory, RecordsFileName);
        var records = new RecordInfo[rows];
        var line = 0;
        foreach (var text in File.ReadLines(recordsPath))
        {
            if (line >= rows)
            {
                throw new InvalidDataException($"{recordsPath}: more than {rows} lines.");
            }

            records[line++] = JsonSerializer.Deserialize<RecordInfo>(text) ?? throw new InvalidDataException($"{recordsPath}: line {line} is null.");
        }

        if (line != rows)
        {
            throw new InvalidDataException($"{recordsPath}: {line} lines for {rows} rows.");
        }

        return new ExactIndex(Path.GetFullPath(directory), info, ids, records, type, offset);
    }

    /// <summary>The row of a case id, or -1.</summary>
    public int IndexOf(string id)
    {
        ArgumentNullException.ThrowIfNull(id);
        return _rows.TryGetValue(id, out var row) ? row : -1;
    }

    /// <summary>The stored (normalised) embedding of a row, as float32.</summary>
    public unsafe float[] GetVector(int row)
    {
        ThrowIfDisposed();
        ArgumentOutOfRangeException.ThrowIfNegative(row);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(row, Count);
        var result = new float[Dimensions];
        if (ElementType == IndexElementType.Float32)
        {
            new ReadOnlySpan<float>((float*)_data + ((long)row * Dimensions), Dimensions).CopyTo(result);
        }
        else
        {
            TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>((Half*)_data + ((long)row * Dimensions), Dimensions), result);
        }

        return result;
    }

    /// <summary>The record of a row (its embedding only when <paramref name="includeVector"/>).</summary>
    public CaseRecord GetRecord(int row, bool includeVector = false)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(row);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(row, Count);
        var info = _records[row];
        return new CaseRecord { Id = Ids[row], SourcePath = info.Source ?? "", Report = info.Report ?? "", Embedding = includeVector ? GetVector(row) : default };
    }

    /// <summary>The <paramref name="k"/> cases most similar (cosine) to one query embedding, best first.</summary>
    public IReadOnlyList<IndexHit> Search(ReadOnlySpan<float> query, int k) => Search(query, 1, k)[0];

    /// <summary>The <paramref name="k"/> cases most similar (cosine) to each of several query embeddings, in one pass over the matrix.</summary>
    /// <param name="queries">The queries, <paramref name="queryCount"/> x <see cref="Dimensions"/>, row-major (normalised here).</param>
    /// <param name="queryCount">The number of queries.</param>
    /// <param name="k">Results per query (capped at <see cref="Count"/>).</param>
    /// <param name="maxDegreeOfParallelism">Threads; -1 for all cores.</param>
    public unsafe IReadOnlyList<IndexHit>[] Search(ReadOnlySpan<float> queries, int queryCount, int k, int maxDegreeOfParallelism = -1)
    {
        ThrowIfDisposed();
        ArgumentOutOfRangeException.ThrowIfLessThan(queryCount, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(k, 1);
        if (queries.Length != (long)queryCount * Dimensions)
        {
            throw new ArgumentException($"Expected {queryCount} queries of width {Dimensions} ({queryCount * Dimensions} values), got {queries.Length} values.", nameof(queries));
        }

        k = Math.Min(k, Count);
        var normalised = queries.ToArray();
        for (var q = 0; q < queryCount; q++)
        {
            var row = normalised.AsSpan(q * Dimensions, Dimensions);
            var norm = TensorPrimitives.Norm(row);
            if (!(norm > 0) || !float.IsFinite(norm))
            {
                throw new ArgumentException($"Query {q} has norm {norm}; it cannot be compared by cosine similarity.", nameof(queries));
            }

            TensorPrimitives.Divide(row, norm, row);
        }

        // Spans hold at most 2^31 - 1 elements: search the matrix in row chunks that fit and merge their top-k.
        var chunkRows = (int)Math.Min(Count, int.MaxValue / Dimensions);
        var hits = new List<IndexHit>[queryCount];
        for (var q = 0; q < queryCount; q++)
        {
            hits[q] = new List<IndexHit>(k);
        }

        var indices = new int[queryCount * k];
        var scores = new float[queryCount * k];
        for (var start = 0; start < Count; start += chunkRows)
        {
            var rows = Math.Min(chunkRows, Count - start);
            var kk = Math.Min(k, rows);
            var length = rows * Dimensions;
            if (ElementType == IndexElementType.Float32)
            {
                Similarity.TopKDotProducts(new ReadOnlySpan<float>((float*)_data + ((long)start * Dimensions), length), normalised, Dimensions, kk, indices, scores, maxDegreeOfParallelism);
            }
            else
            {
                Similarity.TopKDotProducts(new ReadOnlySpan<Half>((Half*)_data + ((long)start * Dimensions), length), normalised, Dimensions, kk, indices, scores, maxDegreeOfParallelism);
            }

            for (var q = 0; q < queryCount; q++)
            {
                for (var n = 0; n < kk; n++)
                {
                    var row = start + indices[(q * kk) + n];
                    hits[q].Add(new IndexHit(row, Ids[row], scores[(q * kk) + n]));
                }
            }
        }

        var result = new IReadOnlyList<IndexHit>[queryCount];
        for (var q = 0; q < queryCount; q++)
        {
            result[q] = chunkRows >= Count ? hits[q]
                : hits[q].OrderByDescending(h => h.Score).ThenBy(h => h.Row).Take(k).ToArray();
        }

        return result;
    }

    /// <summary>Unmaps the matrix.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _file.Dispose();
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    internal static readonly JsonSerializerOptions JsonOptions = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, WriteIndented = true };

    private sealed record RecordInfo(
        [property: JsonPropertyName("source")] string? Source,
        [property: JsonPropertyName("report")] string? Report);

    private sealed record IndexInfo
    {
        public string? Format { get; init; }

        public int Count { get; init; }

        public int Dimensions { get; init; }

        public string? ElementType { get; init; }

        public string? ModelFingerprint { get; init; }
    }
}
