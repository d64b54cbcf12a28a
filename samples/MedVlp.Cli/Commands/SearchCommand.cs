using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using MedVlp.Retrieval;
using MedVlp.Volumes.IO;
using Microsoft.Extensions.VectorData;
using Spectre.Console;

namespace MedVlp.Cli.Commands;

/// <summary>
/// <c>medvlp search (--index INDEX | --postgres CONNSTRING) (--volume FILE | --text "..." | --id ID) --top K [--json]</c>:
/// the most similar cases (volume to volume, text to volume) with their reports.
/// </summary>
internal static class SearchCommand
{
    public static Command Create()
    {
        var index = new Option<string?>("--index") { Description = "An index folder (medvlp index build --out)." };
        var postgres = new Option<string?>("--postgres") { Description = "An Npgsql connection string to PostgreSQL + pgvector." };
        var table = new Option<string>("--table") { Description = "The pgvector table name.", DefaultValueFactory = _ => "cases" };
        var exact = new Option<bool>("--exact") { Description = "With --postgres: exact search (sequential scan) instead of HNSW." };
        var volume = new Option<string?>("--volume") { Description = "Find cases similar to this volume (needs --model)." };
        var text = new Option<string?>("--text") { Description = "Find cases matching this text (needs --model)." };
        var id = new Option<string?>("--id") { Description = "Find cases similar to this indexed case (the case itself is left out)." };
        var modelDir = new Option<string?>("--model") { Description = "The model package that made the embeddings (for --volume and --text)." };
        var top = new Option<int>("--top") { Description = "How many cases.", DefaultValueFactory = _ => 5 };
        var json = new Option<bool>("--json") { Description = "One JSON object per result instead of a table." };
        var command = new Command("search", "Find the most similar cases in an index or a pgvector table, by volume, text or case id.")
        {
            index, postgres, table, exact, volume, text, id, modelDir, top, json,
        };
        command.SetAction((parse, cancellationToken) => Task.FromResult(CliErrors.Run(() =>
        {
            var indexDir = parse.GetValue(index);
            var connection = parse.GetValue(postgres);
            if ((indexDir is null) == (connection is null))
            {
                throw new ArgumentException("Give exactly one of --index INDEX and --postgres CONNSTRING.");
            }

            string? volumePath = parse.GetValue(volume), query = parse.GetValue(text), caseId = parse.GetValue(id);
            if (new[] { volumePath, query, caseId }.Count(v => v is not null) != 1)
            {
                throw new ArgumentException("Give exactly one of --volume FILE, --text \"...\" and --id ID.");
            }

            var k = parse.GetValue(top);
            if (k < 1)
            {
                throw new ArgumentException($"--top must be at least 1, got {k}.");
            }

            VisionLanguageModel? model = null;
            try
            {
                if (caseId is null)
                {
                    var dir = parse.GetValue(modelDir) ?? throw new ArgumentException("--volume and --text need --model DIR, the model that made the embeddings.");
                    model = VisionLanguageModel.Load(dir);
                }

                var embeddings = model is null ? null : CaseEmbeddings.From(model);
                using VectorStoreCollection<string, CaseRecord> collection = indexDir is not null
                    ? new ExactIndexCollection(ExactIndex.Open(indexDir), embeddings, ownsIndex: true)
                    : OpenPostgres(connection!, parse.GetValue(table)!, parse.GetValue(exact), embeddings, cancellationToken);
                if (collection is ExactIndexCollection exactIndex && model is not null && exactIndex.Index.Dimensions != model.VolumeEncoder.Dimensions)
                {
                    throw new ArgumentException($"The index holds {exactIndex.Index.Dimensions}-dimensional embeddings but the model makes {model.VolumeEncoder.Dimensions}.");
                }

                var results = (caseId is not null
                    ? SearchById(collection, caseId, k, cancellationToken)
                    : volumePath is not null
                        ? Collect(collection.SearchAsync(VolumeReader.Read(volumePath), k, null, cancellationToken), cancellationToken)
                        : Collect(collection.SearchAsync(query!, k, null, cancellationToken), cancellationToken));
                Print(results, parse.GetValue(json));
                return 0;
            }
            finally
            {
                model?.Dispose();
            }
        })));
        return command;
    }

    private static PgVectorCaseCollection OpenPostgres(string connection, string table, bool exact, CaseEmbeddings? embeddings, CancellationToken cancellationToken)
    {
        var dataSource = PgVectorCaseCollection.CreateDataSource(connection);
        using (var command = dataSource.CreateCommand("SELECT atttypmod FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = 'embedding'"))
        {
            command.Parameters.AddWithValue(table);
            if (command.ExecuteScalar() is not int dimensions)
            {
                dataSource.Dispose();
                throw new ArgumentException($"PostgreSQL has no table \"{table}\" with an embedding column; build it with medvlp index build --postgres.");
            }

            return new PgVectorCaseCollection(dataSource, table, new PgVectorCollectionOptions
            {
                Dimensions = dimensions,
                SearchMode = exact ? PgVectorSearchMode.Exact : PgVectorSearchMode.Hnsw,
                Embeddings = embeddings,
            }, ownsDataSource: true);
        }
    }

    private static List<VectorSearchResult<CaseRecord>> SearchById(VectorStoreCollection<string, CaseRecord> collection, string id, int k, CancellationToken cancellationToken)
    {
        var record = collection.GetAsync(id, new RecordRetrievalOptions { IncludeVectors = true }, cancellationToken).GetAwaiter().GetResult()
            ?? throw new ArgumentException($"No case with id \"{id}\" in the store.");
        return [.. Collect(collection.SearchAsync(record.Embedding, k + 1, null, cancellationToken), cancellationToken).Where(r => r.Record.Id != id).Take(k)];
    }

    private static List<VectorSearchResult<CaseRecord>> Collect(IAsyncEnumerable<VectorSearchResult<CaseRecord>> results, CancellationToken cancellationToken)
    {
        var list = new List<VectorSearchResult<CaseRecord>>();
        var enumerator = results.GetAsyncEnumerator(cancellationToken);
        try
        {
            while (enumerator.MoveNextAsync().AsTask().GetAwaiter().GetResult())
            {
                list.Add(enumerator.Current);
            }
        }
        finally
        {
            enumerator.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }

        return list;
    }

    private static void Print(List<VectorSearchResult<CaseRecord>> results, bool json)
    {
        if (json)
        {
            for (var n = 0; n < results.Count; n++)
            {
                var r = results[n];
                Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object>
                {
                    ["rank"] = n + 1,
                    ["id"] = r.Record.Id,
                    ["score"] = Math.Round(r.Score ?? double.NaN, 6),
                    ["source"] = r.Record.SourcePath,
                    ["report"] = r.Record.Report,
                }));
            }

            return;
        }

        var table = new Table().AddColumn("#").AddColumn("id").AddColumn(new TableColumn("score").RightAligned()).AddColumn("report");
        for (var n = 0; n < results.Count; n++)
        {
            var r = results[n];
            table.AddRow((n + 1).ToString(CultureInfo.InvariantCulture), Markup.Escape(r.Record.Id), (r.Score ?? double.NaN).ToString("F4", CultureInfo.InvariantCulture), Markup.Escape(r.Record.Report));
        }

        AnsiConsole.Write(table);
    }
}
