using System.Globalization;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using MedVlp.Data;
using static TorchSharp.torch;

namespace MedVlp.Inference.Batch;

/// <summary>Options of <see cref="EmbeddingJob"/>.</summary>
public sealed class EmbeddingJobOptions
{
    /// <summary>The folder the part files and the failures file go to (created if needed). Required.</summary>
    public required string OutputDirectory { get; init; }

    /// <summary>This job's shard, 0 .. <see cref="ShardCount"/> - 1: it embeds the manifest entries at positions p with p mod n = i.</summary>
    public int ShardIndex { get; init; }

    /// <summary>The number of shards (one job each, on any machines; default 1).</summary>
    public int ShardCount { get; init; } = 1;

    /// <summary>Reading, preprocessing and batching.</summary>
    public StreamingEmbedderOptions Embedder { get; init; } = new();
}

/// <summary>What a run of <see cref="EmbeddingJob.RunAsync"/> did.</summary>
/// <param name="Embedded">Volumes embedded in this run.</param>
/// <param name="Skipped">Entries already embedded by an earlier run (skipped).</param>
/// <param name="Failed">Unreadable volumes (listed in the failures file).</param>
/// <param name="FailuresFile">The failures file of this shard.</param>
public sealed record EmbeddingJobSummary(int Embedded, int Skipped, int Failed, string FailuresFile);

/// <summary>
/// A resumable, shardable embedding job over a manifest: every model batch becomes one Parquet part file, written
/// atomically, so a killed job loses at most the batch in flight and a rerun skips the ids already in part files.
/// Unreadable volumes are listed in <c>failures-I-of-N.jsonl</c> (id, path, error) and the job goes on; they are retried
/// by the next run. <see cref="MergeAsync"/> joins the parts of all shards and checks every id is present once.
/// </summary>
public static partial class EmbeddingJob
{
    /// <summary>The merged file name <c>medvlp embed merge</c> writes by default.</summary>
    public const string MergedFileName = "embeddings.parquet";

    /// <summary>Runs (or resumes) one shard of the job.</summary>
    /// <param name="model">The model.</param>
    /// <param name="entries">All entries of the manifest, in manifest order (every shard gets the same list).</param>
    /// <param name="options">Output folder, shard, batching.</param>
    /// <param name="progress">Counts after every batch, including the skipped entries (optional).</param>
    /// <param name="cancellationToken">Stops the job; finished part files stay.</param>
    public static async Task<EmbeddingJobSummary> RunAsync(VisionLanguageModel model, IReadOnlyList<ManifestEntry> entries, EmbeddingJobOptions options,
        IProgress<EmbeddingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(entries);
        ArgumentNullException.ThrowIfNull(options);
        if (options.ShardCount < 1 || options.ShardIndex < 0 || options.ShardIndex >= options.ShardCount)
        {
            throw new ArgumentException($"A shard is i/n with 0 <= i < n; got {options.ShardIndex}/{options.ShardCount}.", nameof(options));
        }

        var dir = options.OutputDirectory;
        Directory.CreateDirectory(dir);
        foreach (var stale in Directory.EnumerateFiles(dir, "*.tmp"))
        {
            File.Delete(stale);
        }

        var metadata = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            [EmbeddingParquet.ModelFingerprintKey] = ModelFingerprint(model),
            [EmbeddingParquet.PreprocessingFingerprintKey] = model.Preprocessing.Fingerprint(),
            [EmbeddingParquet.DimensionsKey] = model.VolumeEncoder.Dimensions.ToString(CultureInfo.InvariantCulture),
        };

        var prefix = string.Create(CultureInfo.InvariantCulture, $"part-{options.ShardIndex:D4}-of-{options.ShardCount:D4}-");
        var done = new HashSet<string>(StringComparer.Ordinal);
        var sequence = 0;
        foreach (var part in Directory.EnumerateFiles(dir, prefix + "*.parquet"))
        {
            var (rows, meta) = await EmbeddingParquet.ReadAsync(part, cancellationToken).ConfigureAwait(false);
            CheckSameModel(part, meta, metadata);
            foreach (var row in rows)
            {
                done.Add(row.Id);
            }

            var name = Path.GetFileNameWithoutExtension(part);
            if (int.TryParse(name.AsSpan(prefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out var n))
            {
                sequence = Math.Max(sequence, n + 1);
            }
        }

        var mine = entries.Where((_, p) => p % options.ShardCount == options.ShardIndex).ToArray();
        var todo = mine.Where(e => !done.Contains(e.Id)).ToArray();
        var skipped = mine.Length - todo.Length;
        var failuresPath = Path.Combine(dir, string.Create(CultureInfo.InvariantCulture, $"failures-{options.ShardIndex:D4}-of-{options.ShardCount:D4}.jsonl"));
        int embedded = 0, failed = 0;
        await using var failures = new StreamWriter(failuresPath, append: false, new UTF8Encoding(false));
        var embedder = new StreamingEmbedder(model, options.Embedder);
        var batch = new List<EmbeddingRow>(options.Embedder.BatchSize);
        var seen = 0;
        var inputs = ToAsync(todo.Select(e => new EmbeddingInput(e.Id, e.Path, e.Report)), cancellationToken);
        await foreach (var result in embedder.EmbedAsync(inputs, null, cancellationToken).ConfigureAwait(false))
        {
            if (result.Succeeded)
            {
                batch.Add(new EmbeddingRow { Id = result.Input.Id, SourcePath = result.Input.SourcePath, Report = result.Input.Report, Embedding = result.Embedding! });
            }
            else
            {
                failed++;
                await failures.WriteLineAsync(JsonSerializer.Serialize(new Dictionary<string, string>
                {
                    ["id"] = result.Input.Id,
                    ["path"] = result.Input.SourcePath,
                    ["error"] = result.Error!,
                })).ConfigureAwait(false);
                await failures.FlushAsync(cancellationToken).ConfigureAwait(false);
            }

            // The embedder yields whole model batches; each becomes one part file.
            if (++seen % options.Embedder.BatchSize == 0 || seen == todo.Length)
            {
                if (batch.Count > 0)
                {
                    await EmbeddingParquet.WriteAsync(Path.Combine(dir, string.Create(CultureInfo.InvariantCulture, $"{prefix}{sequence++:D6}.parquet")), batch, metadata, cancellationToken).ConfigureAwait(false);
                    embedded += batch.Count;
                    batch.Clear();
                }

                progress?.Report(new EmbeddingProgress(skipped + embedded, failed));
            }
        }

        return new EmbeddingJobSummary(embedded, skipped, failed, failuresPath);
    }

    /// <summary>The number of entries a shard embeds.</summary>
    public static int ShardSize(int entries, int shardIndex, int shardCount) => (entries - shardIndex + shardCount - 1) / shardCount;

    /// <summary>
    /// Joins the part files of every shard in <paramref name="directory"/> into one Parquet file, in manifest order.
    /// Checks that all parts come from one model and preprocessing, and that every manifest id is present exactly once.
    /// </summary>
    /// <param name="directory">The job's output folder.</param>
    /// <param name="entries">The manifest entries (the ids that must be present).</param>
    /// <param name="outputPath">The merged file (written atomically).</param>
    /// <param name="cancellationToken">Stops the merge.</param>
    /// <returns>The number of rows written.</returns>
    /// <exception cref="InvalidDataException">Parts disagree, an id is missing or duplicated, or a part holds an id the manifest lacks.</exception>
    public static async Task<int> MergeAsync(string directory, IReadOnlyList<ManifestEntry> entries, string outputPath, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentNullException.ThrowIfNull(entries);
        var parts = Directory.EnumerateFiles(directory, "part-*.parquet").Where(p => PartPattern().IsMatch(Path.GetFileName(p))).Order(StringComparer.Ordinal).ToArray();
        if (parts.Length == 0)
        {
            throw new InvalidDataException($"{directory} holds no part-*.parquet files; run medvlp embed first.");
        }

        var rows = new Dictionary<string, EmbeddingRow>(StringComparer.Ordinal);
        var duplicates = new List<string>();
        IReadOnlyDictionary<string, string>? first = null;
        foreach (var part in parts)
        {
            var (partRows, meta) = await EmbeddingParquet.ReadAsync(part, cancellationToken).ConfigureAwait(false);
            if (first is null)
            {
                first = meta;
            }
            else
            {
                CheckSameModel(part, meta, first);
            }

            foreach (var row in partRows)
            {
                if (!rows.TryAdd(row.Id, row))
                {
                    duplicates.Add($"{row.Id} ({Path.GetFileName(part)})");
                }
            }
        }

        var expected = entries.Select(e => e.Id).ToHashSet(StringComparer.Ordinal);
        var missing = entries.Where(e => !rows.ContainsKey(e.Id)).Select(e => e.Id).ToArray();
        var unknown = rows.Keys.Where(id => !expected.Contains(id)).ToArray();
        if (duplicates.Count > 0 || missing.Length > 0 || unknown.Length > 0)
        {
            var problems = new List<string>();
            if (missing.Length > 0)
            {
                problems.Add($"{missing.Length} id(s) missing: {string.Join(", ", missing.Take(10))}{(missing.Length > 10 ? ", ..." : "")} (see the failures-*.jsonl files, or rerun the shards)");
            }

            if (duplicates.Count > 0)
            {
                problems.Add($"{duplicates.Count} id(s) present more than once: {string.Join(", ", duplicates.Take(10))}");
            }

            if (unknown.Length > 0)
            {
                problems.Add($"{unknown.Length} id(s) not in the manifest: {string.Join(", ", unknown.Take(10))}");
            }

            throw new InvalidDataException($"{directory}: cannot merge: {string.Join("; ", problems)}.");
        }

        var ordered = entries.Select(e => rows[e.Id]).ToArray();
        await EmbeddingParquet.WriteAsync(outputPath, ordered, first!, cancellationToken).ConfigureAwait(false);
        return ordered.Length;
    }

    /// <summary>
    /// A fingerprint of a model's weights and architecture: SHA-256 over its architecture name, configuration and every parameter and buffer
    /// (names, shapes and bytes, in state-dict order). Equal for the same package loaded twice.
    /// </summary>
    public static string ModelFingerprint(VisionLanguageModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(Encoding.UTF8.GetBytes(model.Architecture + "\n" + JsonSerializer.Serialize(model.Config, model.Config.GetType())));
        using var scope = NewDisposeScope();
        foreach (var (name, tensor) in model.Module.state_dict())
        {
            hash.AppendData(Encoding.UTF8.GetBytes($"{name}:{string.Join('x', tensor.shape)}:{tensor.dtype}\n"));
            var cpu = tensor.cpu().contiguous();
            hash.AppendData(cpu.bytes);
        }

        return "sha256:" + Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    private static void CheckSameModel(string path, IReadOnlyDictionary<string, string> found, IReadOnlyDictionary<string, string> expected)
    {
        foreach (var key in new[] { EmbeddingParquet.ModelFingerprintKey, EmbeddingParquet.PreprocessingFingerprintKey })
        {
            found.TryGetValue(key, out var value);
            if (value != expected[key])
            {
                throw new InvalidDataException($"{path}: metadata \"{key}\" is {value ?? "(missing)"} but this job's is {expected[key]}; parts of different models or preprocessing cannot be mixed (use a new output folder).");
            }
        }
    }

    private static async IAsyncEnumerable<T> ToAsync<T>(IEnumerable<T> items, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        foreach (var item in items)
        {
            cancellationToken.ThrowIfCancellationRequested();
            yield return item;
        }

        await Task.CompletedTask.ConfigureAwait(false);
    }

    [GeneratedRegex(@"^part-\d{4}-of-\d{4}-\d{6}\.parquet$")]
    private static partial Regex PartPattern();
}
