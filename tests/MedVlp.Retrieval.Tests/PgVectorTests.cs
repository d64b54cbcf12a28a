using MedVlp.Testing;
using Microsoft.Extensions.VectorData;

namespace MedVlp.Retrieval.Tests;

/// <summary>The pgvector store against a real PostgreSQL (PGlite with pgvector): exact search equals the exact index,
/// HNSW recall@10 against exact, and results that survive a restart.</summary>
public sealed class PgVectorTests
{
    private const int Dimensions = 48;

    /// <summary>Clustered, seeded embeddings (like cases of a few diagnoses).</summary>
    internal static CaseRecord[] Cases(int count, int seed, int dimensions = Dimensions)
    {
        var random = new Random(seed);
        var centres = Enumerable.Range(0, 8).Select(_ => Enumerable.Range(0, dimensions).Select(_ => Gaussian(random)).ToArray()).ToArray();
        return [.. Enumerable.Range(0, count).Select(n =>
        {
            var centre = centres[random.Next(centres.Length)];
            var v = centre.Select(c => (float)(c + (0.8 * Gaussian(random)))).ToArray();
            return new CaseRecord { Id = $"c{n:D5}", SourcePath = $"/data/c{n:D5}.nii.gz", Report = $"report of case {n}", Embedding = v };
        })];
    }

    private static double Gaussian(Random random) => Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());

    private static async Task<List<VectorSearchResult<CaseRecord>>> Search(VectorStoreCollection<string, CaseRecord> collection, ReadOnlyMemory<float> query, int k)
    {
        var list = new List<VectorSearchResult<CaseRecord>>();
        await foreach (var r in collection.SearchAsync(query, k))
        {
            list.Add(r);
        }

        return list;
    }

    [Fact]
    public async Task ExactSearchEqualsTheExactIndexAndHnswReachesRecall95()
    {
        var cases = Cases(2000, 1);
        var queries = Cases(40, 2).Select(c => c.Embedding).ToArray();
        using var dir = TestData.NewTempFolder();
        ExactIndex.Build(dir.Path, cases);
        using var exactIndex = new ExactIndexCollection(ExactIndex.Open(dir.Path), ownsIndex: true);
        var table = TestPostgres.NewTable("recall");
        using var hnsw = new PgVectorCaseCollection(PgVectorCaseCollection.CreateDataSource(TestPostgres.ConnectionString), table,
            new PgVectorCollectionOptions { Dimensions = Dimensions }, ownsDataSource: true);
        using var exact = new PgVectorCaseCollection(PgVectorCaseCollection.CreateDataSource(TestPostgres.ConnectionString), table,
            new PgVectorCollectionOptions { Dimensions = Dimensions, SearchMode = PgVectorSearchMode.Exact }, ownsDataSource: true);
        try
        {
            await hnsw.EnsureCollectionExistsAsync();
            await hnsw.UpsertAsync(cases);
            Assert.Equal(2000, await hnsw.CountAsync());
            int found = 0, total = 0;
            foreach (var query in queries)
            {
                var reference = await Search(exactIndex, query, 10);
                var sql = await Search(exact, query, 10);
                Assert.Equal(reference.Select(r => r.Record.Id), sql.Select(r => r.Record.Id));
                for (var n = 0; n < 10; n++)
                {
                    Assert.True(Math.Abs(reference[n].Score!.Value - sql[n].Score!.Value) < 1e-5, $"{reference[n].Score} vs {sql[n].Score}");
                }

                var approximate = await Search(hnsw, query, 10);
                Assert.Equal(10, approximate.Count);
                found += approximate.Count(a => reference.Any(r => r.Record.Id == a.Record.Id));
                total += 10;
            }

            var recall = (double)found / total;
            Assert.True(recall >= 0.95, $"HNSW recall@10 {recall:F3} < 0.95");
            var got = await hnsw.GetAsync("c00007", new RecordRetrievalOptions { IncludeVectors = true });
            Assert.NotNull(got);
            Assert.Equal("report of case 7", got!.Report);
            Assert.Equal(cases[7].Embedding.ToArray(), got.Embedding.ToArray());
        }
        finally
        {
            await hnsw.EnsureCollectionDeletedAsync();
        }

        Assert.False(await hnsw.CollectionExistsAsync());
    }

    [Fact]
    public async Task UpsertReplacesAndDeleteRemoves()
    {
        var table = TestPostgres.NewTable("upsert");
        using var collection = new PgVectorCaseCollection(PgVectorCaseCollection.CreateDataSource(TestPostgres.ConnectionString), table,
            new PgVectorCollectionOptions { Dimensions = 3 }, ownsDataSource: true);
        try
        {
            await collection.EnsureCollectionExistsAsync();
            await collection.UpsertAsync(new CaseRecord { Id = "a", Report = "old", Embedding = new float[] { 1, 0, 0 } });
            await collection.UpsertAsync(new CaseRecord { Id = "a", Report = "new", Embedding = new float[] { 0, 1, 0 } });
            Assert.Equal(1, await collection.CountAsync());
            Assert.Equal("new", (await collection.GetAsync("a"))!.Report);
            var wrongWidth = await Assert.ThrowsAsync<ArgumentException>(() => collection.UpsertAsync(new CaseRecord { Id = "b", Embedding = new float[] { 1, 2 } }));
            Assert.Contains("width 2", wrongWidth.Message, StringComparison.Ordinal);
            await collection.DeleteAsync("a");
            Assert.Null(await collection.GetAsync("a"));
            using var other = new PgVectorCaseCollection(PgVectorCaseCollection.CreateDataSource(TestPostgres.ConnectionString), table,
                new PgVectorCollectionOptions { Dimensions = 4 }, ownsDataSource: true);
            var mismatch = await Assert.ThrowsAsync<InvalidOperationException>(() => other.EnsureCollectionExistsAsync());
            Assert.Contains("vector(3)", mismatch.Message, StringComparison.Ordinal);
        }
        finally
        {
            await collection.EnsureCollectionDeletedAsync();
        }

        Assert.Throws<ArgumentException>(() => new PgVectorCaseCollection(PgVectorCaseCollection.CreateDataSource(TestPostgres.ConnectionString), "cases; drop table x",
            new PgVectorCollectionOptions { Dimensions = 3 }, ownsDataSource: true));
    }

    [Fact]
    public async Task ResultsSurviveAPostgresRestart()
    {
        using var data = TestData.NewTempFolder();
        var cases = Cases(300, 3);
        var query = Cases(1, 4)[0].Embedding;
        List<VectorSearchResult<CaseRecord>> before;
        using (var server = new TestPostgres.OwnServer(data.File("pgdata")))
        {
            using var collection = new PgVectorCaseCollection(PgVectorCaseCollection.CreateDataSource(server.ConnectionString), "cases",
                new PgVectorCollectionOptions { Dimensions = Dimensions }, ownsDataSource: true);
            await collection.EnsureCollectionExistsAsync();
            await collection.UpsertAsync(cases);
            before = await Search(collection, query, 10);
            server.Stop();
        }

        using (var server = new TestPostgres.OwnServer(data.File("pgdata")))
        {
            using var collection = new PgVectorCaseCollection(PgVectorCaseCollection.CreateDataSource(server.ConnectionString), "cases",
                new PgVectorCollectionOptions { Dimensions = Dimensions }, ownsDataSource: true);
            Assert.True(await collection.CollectionExistsAsync());
            Assert.Equal(300, await collection.CountAsync());
            var after = await Search(collection, query, 10);
            Assert.Equal(before.Select(r => r.Record.Id), after.Select(r => r.Record.Id));
            Assert.Equal(before.Select(r => r.Score), after.Select(r => r.Score));
            Assert.Equal(10, after.Count);
        }
    }
}
