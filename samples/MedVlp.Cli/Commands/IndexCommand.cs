using System.CommandLine;
using System.Globalization;
using MedVlp.Inference.Batch;
using MedVlp.Retrieval;

namespace MedVlp.Cli.Commands;

/// <summary><c>medvlp index build --embeddings DIR (--out INDEX | --postgres CONNSTRING)</c>: an exact index folder or a pgvector table from embeddings Parquet.</summary>
internal static class IndexCommand
{
    public static Command Create()
    {
        var embeddings = new Option<string>("--embeddings") { Description = "An embeddings Parquet file, or the folder of medvlp embed (embeddings.parquet, else its part files).", Required = true };
        var output = new Option<string?>("--out") { Description = "The index folder to write (vectors.npy, ids.txt, records.jsonl, index.json)." };
        var postgres = new Option<string?>("--postgres") { Description = "Load into PostgreSQL + pgvector instead (an Npgsql connection string)." };
        var table = new Option<string>("--table") { Description = "The pgvector table (collection) name.", DefaultValueFactory = _ => "cases" };
        var dtype = new Option<string>("--dtype") { Description = "float32 or float16 (index folders only).", DefaultValueFactory = _ => "float32" };
        var build = new Command("build", "Build an exact top-k index (a NumPy .npy matrix plus ids) or a pgvector table with an HNSW index from embeddings.")
        {
            embeddings, output, postgres, table, dtype,
        };
        build.SetAction((parse, cancellationToken) => Task.FromResult(CliErrors.Run(() =>
        {
            var outDir = parse.GetValue(output);
            var connection = parse.GetValue(postgres);
            if ((outDir is null) == (connection is null))
            {
                throw new ArgumentException("Give exactly one of --out INDEX and --postgres CONNSTRING.");
            }

            var (rows, metadata) = ReadEmbeddings(parse.GetValue(embeddings)!, cancellationToken);
            var records = rows.Select(r => new CaseRecord { Id = r.Id, SourcePath = r.SourcePath, Report = r.Report, Embedding = r.Embedding }).ToArray();
            if (outDir is not null)
            {
                var type = parse.GetValue(dtype) switch
                {
                    "float32" => IndexElementType.Float32,
                    "float16" => IndexElementType.Float16,
                    var other => throw new ArgumentException($"--dtype must be float32 or float16, got \"{other}\"."),
                };
                metadata.TryGetValue(EmbeddingParquet.ModelFingerprintKey, out var fingerprint);
                var count = ExactIndex.Build(outDir, records, new ExactIndexBuildOptions { ElementType = type, ModelFingerprint = fingerprint }, cancellationToken);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"indexed {count} cases ({records[0].Embedding.Length} dimensions, {parse.GetValue(dtype)}) in {outDir}"));
            }
            else
            {
                using var collection = new PgVectorCaseCollection(PgVectorCaseCollection.CreateDataSource(connection!), parse.GetValue(table)!,
                    new PgVectorCollectionOptions { Dimensions = records[0].Embedding.Length }, ownsDataSource: true);
                collection.EnsureCollectionExistsAsync(cancellationToken).GetAwaiter().GetResult();
                collection.UpsertAsync(records, cancellationToken).GetAwaiter().GetResult();
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"upserted {records.Length} cases into table {collection.Name} (HNSW, cosine)"));
            }

            return 0;
        })));
        return new Command("index", "Build retrieval indexes.") { build };
    }

    /// <summary>Rows of an embeddings file, or of a medvlp embed folder (its merged file, else its part files, which must not repeat an id).</summary>
    internal static (IReadOnlyList<EmbeddingRow> Rows, IReadOnlyDictionary<string, string> Metadata) ReadEmbeddings(string path, CancellationToken cancellationToken)
    {
        string[] files;
        if (File.Exists(path))
        {
            files = [path];
        }
        else if (Directory.Exists(path))
        {
            var merged = Path.Combine(path, EmbeddingJob.MergedFileName);
            files = File.Exists(merged) ? [merged] : [.. Directory.EnumerateFiles(path, "part-*.parquet").Order(StringComparer.Ordinal)];
            if (files.Length == 0)
            {
                throw new FileNotFoundException($"{path} holds neither {EmbeddingJob.MergedFileName} nor part-*.parquet files.");
            }
        }
        else
        {
            throw new FileNotFoundException($"{path} does not exist.");
        }

        var rows = new List<EmbeddingRow>();
        var ids = new HashSet<string>(StringComparer.Ordinal);
        IReadOnlyDictionary<string, string>? metadata = null;
        foreach (var file in files)
        {
            var (part, meta) = EmbeddingParquet.ReadAsync(file, cancellationToken).GetAwaiter().GetResult();
            metadata ??= meta;
            foreach (var row in part)
            {
                if (!ids.Add(row.Id))
                {
                    throw new InvalidDataException($"{file}: id \"{row.Id}\" appears twice in the embeddings.");
                }

                rows.Add(row);
            }
        }

        if (rows.Count == 0)
        {
            throw new InvalidDataException($"{path}: no embeddings.");
        }

        return (rows, metadata ?? new Dictionary<string, string>());
    }
}
