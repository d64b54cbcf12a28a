using System.Text.Json;
using MedVlp.Data;
using MedVlp.Inference.Batch;
using MedVlp.Testing;
using MedVlp.Volumes.IO;

namespace MedVlp.Retrieval.Tests;

/// <summary><c>medvlp index build</c> and <c>medvlp search</c> on an embedded synthetic archive, against the library.</summary>
public sealed class SearchCommandTests
{
    private static JsonElement[] Json(string stdout) =>
        [.. stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement.Clone())];

    [Fact]
    public async Task IndexAndPostgresAnswerVolumeTextAndIdQueries()
    {
        using var dir = TestData.NewTempFolder();
        var modelDir = EmbedFixture.SaveModel(dir.Path);
        var (manifest, ids) = EmbedFixture.WriteArchive(dir.Path, 12);
        var embeddings = dir.File("emb");
        Assert.Equal(0, CliRunner.Run("embed", "--model", modelDir, "--manifest", manifest, "--out", embeddings, "--batch", "5").ExitCode);
        var index = dir.File("index");
        var build = CliRunner.Run("index", "build", "--embeddings", embeddings, "--out", index);
        Assert.True(build.ExitCode == 0, build.StdErr);
        Assert.Contains("indexed 12 cases (8 dimensions, float32)", build.StdOut, StringComparison.Ordinal);

        // Volume to volume: the archive's own volume comes first with cosine 1; the rest match the library's exact search.
        var entries = Manifest.Load(manifest).Entries;
        var query = entries[4].Path;
        var byVolume = CliRunner.Run("search", "--index", index, "--model", modelDir, "--volume", query, "--top", "5", "--json");
        Assert.True(byVolume.ExitCode == 0, byVolume.StdErr);
        var hits = Json(byVolume.StdOut);
        Assert.Equal(5, hits.Length);
        Assert.Equal("case_0004", hits[0].GetProperty("id").GetString());
        Assert.Equal(1.0, hits[0].GetProperty("score").GetDouble(), 5);
        Assert.Equal(entries[4].Report, hits[0].GetProperty("report").GetString());
        using var model = VisionLanguageModel.Load(modelDir);
        using var exact = ExactIndex.Open(index);
        var expected = exact.Search(model.VolumeEncoder.Embed(VolumeReader.Read(query)), 5);
        Assert.Equal(expected.Select(h => h.Id), hits.Select(h => h.GetProperty("id").GetString()));

        // Text to volume through the model's text encoder, as the VectorData collection does it.
        const string Text = "Memory complaints with hippocampal atrophy.";
        var byText = Json(CliRunner.Run("search", "--index", index, "--model", modelDir, "--text", Text, "--top", "3", "--json").StdOut);
        Assert.Equal(exact.Search(model.TextEncoder.Embed(Text), 3).Select(h => h.Id), byText.Select(h => h.GetProperty("id").GetString()));
        using var collection = new ExactIndexCollection(ExactIndex.Open(index), CaseEmbeddings.From(model), ownsIndex: true);
        var viaCollection = new List<string>();
        await foreach (var r in collection.SearchAsync(Text, 3))
        {
            viaCollection.Add(r.Record.Id);
        }

        Assert.Equal(byText.Select(h => h.GetProperty("id").GetString()), viaCollection);

        // Case to case leaves the case out.
        var byId = Json(CliRunner.Run("search", "--index", index, "--id", "case_0004", "--top", "4", "--json").StdOut);
        Assert.Equal(hits.Skip(1).Select(h => h.GetProperty("id").GetString()), byId.Select(h => h.GetProperty("id").GetString()));

        // The same through PostgreSQL + pgvector (exact mode), loaded by medvlp index build --postgres.
        var table = TestPostgres.NewTable("cli");
        var load = CliRunner.Run("index", "build", "--embeddings", embeddings, "--postgres", TestPostgres.ConnectionString, "--table", table);
        Assert.True(load.ExitCode == 0, load.StdErr);
        try
        {
            var pg = Json(CliRunner.Run("search", "--postgres", TestPostgres.ConnectionString, "--table", table, "--exact", "--model", modelDir, "--volume", query, "--top", "5", "--json").StdOut);
            Assert.Equal(hits.Select(h => h.GetProperty("id").GetString()), pg.Select(h => h.GetProperty("id").GetString()));
            var pgId = Json(CliRunner.Run("search", "--postgres", TestPostgres.ConnectionString, "--table", table, "--id", "case_0004", "--top", "4", "--json").StdOut);
            Assert.Equal(byId.Select(h => h.GetProperty("id").GetString()), pgId.Select(h => h.GetProperty("id").GetString()));
        }
        finally
        {
            using var drop = new PgVectorCaseCollection(PgVectorCaseCollection.CreateDataSource(TestPostgres.ConnectionString), table,
                new PgVectorCollectionOptions { Dimensions = 8 }, ownsDataSource: true);
            await drop.EnsureCollectionDeletedAsync();
        }

        // A table view for people, and clear errors.
        var table1 = CliRunner.Run("search", "--index", index, "--id", "case_0001", "--top", "2");
        Assert.Equal(0, table1.ExitCode);
        Assert.Contains("score", table1.StdOut, StringComparison.Ordinal);
        var missing = CliRunner.Run("search", "--index", index, "--id", "nope", "--top", "2");
        Assert.Equal(2, missing.ExitCode);
        Assert.Contains("No case with id \"nope\"", missing.StdErr, StringComparison.Ordinal);
        var noModel = CliRunner.Run("search", "--index", index, "--text", "x");
        Assert.Equal(2, noModel.ExitCode);
        Assert.Contains("--model", noModel.StdErr, StringComparison.Ordinal);
        Assert.Equal(ids.Length, exact.Count);
        Assert.Equal((await EmbeddingParquet.ReadAsync(Directory.GetFiles(embeddings, "part-*.parquet")[0])).Metadata[EmbeddingParquet.ModelFingerprintKey], exact.ModelFingerprint);
    }
}
