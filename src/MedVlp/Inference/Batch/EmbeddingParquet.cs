using System.Text.Json.Serialization;
using Parquet;
using Parquet.Serialization;

namespace MedVlp.Inference.Batch;

/// <summary>One row of an embeddings Parquet file.</summary>
public sealed class EmbeddingRow
{
    /// <summary>The case id.</summary>
    [JsonPropertyName("id")]
    public string Id { get; set; } = "";

    /// <summary>The volume file or series folder.</summary>
    [JsonPropertyName("source_path")]
    public string SourcePath { get; set; } = "";

    /// <summary>The report (empty when none).</summary>
    [JsonPropertyName("report")]
    public string Report { get; set; } = "";

    /// <summary>The L2-normalised embedding.</summary>
    [JsonPropertyName("embedding")]
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Performance", "CA1819", Justification = "A Parquet list column, serialised by Parquet.Net.")]
    public float[] Embedding { get; set; } = [];
}

/// <summary>
/// The Parquet files <c>medvlp embed</c> writes: columns <c>id</c>, <c>source_path</c>, <c>report</c>, <c>embedding</c>
/// (a list of float), and the key-value metadata <c>medvlp.model_fingerprint</c>, <c>medvlp.preprocessing_fingerprint</c>
/// and <c>medvlp.dimensions</c>. Files are written to a temporary name and renamed, so a file is either complete or absent.
/// </summary>
public static class EmbeddingParquet
{
    /// <summary>Metadata keys.</summary>
    public const string ModelFingerprintKey = "medvlp.model_fingerprint", PreprocessingFingerprintKey = "medvlp.preprocessing_fingerprint", DimensionsKey = "medvlp.dimensions";

    /// <summary>Writes rows to <paramref name="path"/> atomically (temporary file, flush to disk, rename).</summary>
    public static async Task WriteAsync(string path, IReadOnlyCollection<EmbeddingRow> rows, IReadOnlyDictionary<string, string> metadata, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(rows);
        var tmp = path + ".tmp";
        await using (var stream = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            await ParquetSerializer.SerializeAsync(rows, stream, null, metadata, cancellationToken).ConfigureAwait(false);
            stream.Flush(flushToDisk: true);
        }

        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>Reads every row of a file.</summary>
    /// <exception cref="InvalidDataException">The file is not an embeddings Parquet file.</exception>
    public static async Task<(IList<EmbeddingRow> Rows, IReadOnlyDictionary<string, string> Metadata)> ReadAsync(string path, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        try
        {
            var result = await ParquetSerializer.DeserializeAsync<EmbeddingRow>(path, null, null, cancellationToken).ConfigureAwait(false);
            var names = result.Schema.Fields.Select(f => f.Name).ToHashSet(StringComparer.Ordinal);
            foreach (var needed in new[] { "id", "source_path", "report", "embedding" })
            {
                if (!names.Contains(needed))
                {
                    throw new InvalidDataException($"{path}: column \"{needed}\" is missing; this is not a medvlp embeddings file.");
                }
            }

            return (result.Data, result.CustomMetadata ?? new Dictionary<string, string>());
        }
        catch (Exception ex) when (ex is IOException and not FileNotFoundException || ex is ParquetException)
        {
            throw new InvalidDataException($"{path}: not a readable Parquet file ({ex.Message}).", ex);
        }
    }
}
