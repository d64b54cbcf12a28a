using System.Text.Json;
using MedVlp.Testing;

namespace MedVlp.Retrieval.Tests;

/// <summary>The exact index against numpy's brute force (tests/golden/make_retrieval_golden.py): same ids, scores to 1e-6.</summary>
public sealed class ExactIndexGoldenTests
{
    private static (string[] Ids, float[][] Scores) Expected(out int k)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(TestData.Golden("retrieval/topk.json")));
        k = doc.RootElement.GetProperty("k").GetInt32();
        var queries = doc.RootElement.GetProperty("queries").EnumerateArray().ToArray();
        return ([.. queries.SelectMany(q => q.GetProperty("ids").EnumerateArray().Select(i => i.GetString()!))],
            [.. queries.Select(q => q.GetProperty("scores").EnumerateArray().Select(s => (float)s.GetDouble()).ToArray())]);
    }

    private static IEnumerable<CaseRecord> Records()
    {
        var (data, rows, columns) = Npy.ReadFloat32(TestData.Golden("retrieval/embeddings.npy"));
        for (var r = 0; r < rows; r++)
        {
            yield return new CaseRecord { Id = $"case_{r:D4}", SourcePath = $"/archive/{r}.nii.gz", Report = $"report {r}", Embedding = data.AsMemory(r * columns, columns) };
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(-1)]
    public void BuiltIndexEqualsNumpyBruteForce(int threads)
    {
        using var dir = TestData.NewTempFolder();
        Assert.Equal(600, ExactIndex.Build(dir.Path, Records()));
        using var index = ExactIndex.Open(dir.Path);
        var (queries, count, dim) = Npy.ReadFloat32(TestData.Golden("retrieval/queries.npy"));
        var (ids, scores) = Expected(out var k);
        var hits = index.Search(queries, count, k, threads);
        for (var q = 0; q < count; q++)
        {
            Assert.Equal(ids.Skip(q * k).Take(k), hits[q].Select(h => h.Id));
            for (var n = 0; n < k; n++)
            {
                Assert.True(Math.Abs(scores[q][n] - hits[q][n].Score) <= 1e-6, $"query {q} rank {n}: {hits[q][n].Score} vs numpy {scores[q][n]}");
            }
        }

        // One query at a time gives the same answers as the batch.
        var single = index.Search(queries.AsSpan(dim, dim), k);
        Assert.Equal(hits[1].Select(h => h.Id), single.Select(h => h.Id));
        Assert.Equal("report 292", index.GetRecord(index.IndexOf("case_0292")).Report);
    }

    [Fact]
    public void VectorsFileHoldsNumpysNormalisedMatrix()
    {
        using var dir = TestData.NewTempFolder();
        ExactIndex.Build(dir.Path, Records());
        var (ours, rows, columns) = Npy.ReadFloat32(dir.File(ExactIndex.VectorsFileName));
        var (numpy, _, _) = Npy.ReadFloat32(TestData.Golden("retrieval/normalised.npy"));
        Assert.Equal((600, 32), (rows, columns));
        for (var n = 0; n < numpy.Length; n++)
        {
            Assert.True(Math.Abs(numpy[n] - ours[n]) <= 1e-7, $"value {n}: {ours[n]} vs {numpy[n]}");
        }

        // And the index opens numpy's own file: replace our matrix by numpy's and search again.
        File.Copy(TestData.Golden("retrieval/normalised.npy"), dir.File(ExactIndex.VectorsFileName), overwrite: true);
        using var index = ExactIndex.Open(dir.Path);
        var (queries, count, _) = Npy.ReadFloat32(TestData.Golden("retrieval/queries.npy"));
        var (ids, _) = Expected(out var k);
        Assert.Equal(ids.Take(k), index.Search(queries.AsSpan(0, columns), k).Select(h => h.Id));
        Assert.Equal(8, count);
    }

    [Fact]
    public void Float16IndexFindsTheSameCases()
    {
        using var dir = TestData.NewTempFolder();
        ExactIndex.Build(dir.Path, Records(), new ExactIndexBuildOptions { ElementType = IndexElementType.Float16 });
        using var index = ExactIndex.Open(dir.Path);
        Assert.Equal(IndexElementType.Float16, index.ElementType);
        Assert.Equal(600L * 32 * 2 + 128, new FileInfo(dir.File(ExactIndex.VectorsFileName)).Length);
        var (queries, count, _) = Npy.ReadFloat32(TestData.Golden("retrieval/queries.npy"));
        var (ids, scores) = Expected(out var k);
        var hits = index.Search(queries, count, k);
        for (var q = 0; q < count; q++)
        {
            // Half precision moves scores by ~1e-3: the best case and the scores agree to that.
            Assert.Equal(ids[q * k], hits[q][0].Id);
            Assert.True(Math.Abs(scores[q][0] - hits[q][0].Score) < 2e-3);

            // One query alone takes the half kernel that reads rows without widening them: same cases, same scores to 1e-6.
            var alone = index.Search(queries.AsSpan(q * index.Dimensions, index.Dimensions), k);
            Assert.Equal(hits[q].Select(h => h.Id), alone.Select(h => h.Id));
            Assert.All(alone.Zip(hits[q]), pair => Assert.True(Math.Abs(pair.First.Score - pair.Second.Score) < 1e-6));
        }
    }

    [Fact]
    public void BadInputIsRejectedWithTheFileAndField()
    {
        using var dir = TestData.NewTempFolder();
        var duplicate = new[] { new CaseRecord { Id = "a", Embedding = new float[] { 1, 0 } }, new CaseRecord { Id = "a", Embedding = new float[] { 0, 1 } } };
        Assert.Contains("appears twice", Assert.Throws<ArgumentException>(() => ExactIndex.Build(dir.Path, duplicate)).Message, StringComparison.Ordinal);
        var zero = new[] { new CaseRecord { Id = "z", Embedding = new float[] { 0, 0 } } };
        Assert.Contains("norm 0", Assert.Throws<ArgumentException>(() => ExactIndex.Build(dir.Path, zero)).Message, StringComparison.Ordinal);
        Assert.False(File.Exists(dir.File(ExactIndex.InfoFileName)));

        ExactIndex.Build(dir.Path, [new CaseRecord { Id = "x", Embedding = new float[] { 1, 2, 3 } }]);
        var vectors = dir.File(ExactIndex.VectorsFileName);
        var bytes = File.ReadAllBytes(vectors);
        File.WriteAllBytes(vectors, bytes[..^4]);
        var truncated = Assert.Throws<InvalidDataException>(() => ExactIndex.Open(dir.Path));
        Assert.Contains(vectors, truncated.Message, StringComparison.Ordinal);
        Assert.Contains("needs 140 bytes", truncated.Message, StringComparison.Ordinal);
        bytes[22] = (byte)'i'; // '<f4' -> '<i4'
        File.WriteAllBytes(vectors, bytes);
        var wrongType = Assert.Throws<InvalidDataException>(() => ExactIndex.Open(dir.Path));
        Assert.Contains("descr", wrongType.Message, StringComparison.Ordinal);
    }
}
