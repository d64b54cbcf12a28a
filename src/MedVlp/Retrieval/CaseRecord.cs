using Microsoft.Extensions.VectorData;

namespace MedVlp.Retrieval;

/// <summary>
/// One case in a retrieval store: its id, the volume it was embedded from, its report and its (L2-normalised)
/// embedding. The record type of <see cref="ExactIndexCollection"/> and <see cref="PgVectorCaseCollection"/>.
/// </summary>
public sealed class CaseRecord
{
    /// <summary>The case id (unique in a store).</summary>
    [VectorStoreKey]
    public string Id { get; set; } = "";

    /// <summary>The volume file or series folder the embedding was made from.</summary>
    [VectorStoreData]
    public string SourcePath { get; set; } = "";

    /// <summary>The case's report (empty when there is none).</summary>
    [VectorStoreData]
    public string Report { get; set; } = "";

    /// <summary>The embedding (empty when a store was asked not to return vectors).</summary>
    public ReadOnlyMemory<float> Embedding { get; set; }
}

/// <summary>One search result of an <see cref="ExactIndex"/>.</summary>
/// <param name="Row">The row of the index matrix.</param>
/// <param name="Id">The case id.</param>
/// <param name="Score">Cosine similarity of the query and the case.</param>
public sealed record IndexHit(int Row, string Id, float Score);
