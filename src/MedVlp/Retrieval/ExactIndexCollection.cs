using System.Linq.Expressions;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.VectorData;

namespace MedVlp.Retrieval;

/// <summary>
/// An <see cref="ExactIndex"/> behind Microsoft.Extensions.VectorData's <see cref="VectorStoreCollection{TKey, TRecord}"/>:
/// get cases by id and search by embedding, by volume or by text (through <see cref="CaseEmbeddings"/>). Scores are cosine
/// similarities. The index is immutable: build a new one with <see cref="ExactIndex.Build"/> to change it (upserts and
/// deletes throw <see cref="NotSupportedException"/>, and so do filters, which an exact index does not evaluate).
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Naming", "CA1711", Justification = "A VectorStoreCollection, named as Microsoft.Extensions.VectorData's providers name theirs.")]
public sealed class ExactIndexCollection : VectorStoreCollection<string, CaseRecord>
{
    private readonly ExactIndex _index;
    private readonly CaseEmbeddings _embeddings;
    private readonly bool _ownsIndex;

    /// <summary>A collection over an open index.</summary>
    /// <param name="index">The index.</param>
    /// <param name="embeddings">Generators for searching by volume or text (optional).</param>
    /// <param name="ownsIndex">Dispose the index with the collection.</param>
    public ExactIndexCollection(ExactIndex index, CaseEmbeddings? embeddings = null, bool ownsIndex = false)
    {
        ArgumentNullException.ThrowIfNull(index);
        _index = index;
        _embeddings = embeddings ?? new CaseEmbeddings();
        _ownsIndex = ownsIndex;
    }

    /// <summary>The index.</summary>
    public ExactIndex Index => _index;

    /// <inheritdoc />
    public override string Name => Path.GetFileName(_index.Directory);

    /// <inheritdoc />
    public override Task<bool> CollectionExistsAsync(CancellationToken cancellationToken = default) => Task.FromResult(true);

    /// <inheritdoc />
    public override Task EnsureCollectionExistsAsync(CancellationToken cancellationToken = default) => Task.CompletedTask;

    /// <inheritdoc />
    public override Task EnsureCollectionDeletedAsync(CancellationToken cancellationToken = default) =>
        throw new NotSupportedException("An exact index is a folder of files; delete the folder to delete it.");

    /// <inheritdoc />
    public override Task<CaseRecord?> GetAsync(string key, RecordRetrievalOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        var row = _index.IndexOf(key);
        return Task.FromResult(row < 0 ? null : _index.GetRecord(row, options?.IncludeVectors == true));
    }

    /// <inheritdoc />
    public override async IAsyncEnumerable<CaseRecord> GetAsync(IEnumerable<string> keys, RecordRetrievalOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(keys);
        foreach (var key in keys)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (await GetAsync(key, options, cancellationToken).ConfigureAwait(false) is { } record)
            {
                yield return record;
            }
        }
    }

    /// <inheritdoc />
    public override IAsyncEnumerable<CaseRecord> GetAsync(Expression<Func<CaseRecord, bool>> filter, int top, FilteredRecordRetrievalOptions<CaseRecord>? options = null, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException("An exact index does not evaluate filters; get records by id or search.");

    /// <inheritdoc />
    public override Task DeleteAsync(string key, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException("An exact index is immutable; build a new one with ExactIndex.Build.");

    /// <inheritdoc />
    public override Task UpsertAsync(CaseRecord record, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException("An exact index is immutable; build a new one with ExactIndex.Build.");

    /// <inheritdoc />
    public override Task UpsertAsync(IEnumerable<CaseRecord> records, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException("An exact index is immutable; build a new one with ExactIndex.Build.");

    /// <inheritdoc />
    public override async IAsyncEnumerable<VectorSearchResult<CaseRecord>> SearchAsync<TInput>(TInput searchValue, int top, VectorSearchOptions<CaseRecord>? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(top, 1);
        if (options?.Filter is not null)
        {
            throw new NotSupportedException("An exact index does not evaluate filters.");
        }

        var skip = options?.Skip ?? 0;
        ArgumentOutOfRangeException.ThrowIfNegative(skip);
        var query = await _embeddings.EmbedAsync(searchValue, cancellationToken).ConfigureAwait(false);
        var hits = await Task.Run(() => _index.Search(query.Span, top + skip), cancellationToken).ConfigureAwait(false);
        foreach (var hit in hits.Skip(skip))
        {
            if (options?.ScoreThreshold is { } threshold && hit.Score < threshold)
            {
                yield break;
            }

            yield return new VectorSearchResult<CaseRecord>(_index.GetRecord(hit.Row, options?.IncludeVectors == true), hit.Score);
        }
    }

    /// <inheritdoc />
    public override object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        return serviceKey is not null ? null
            : serviceType == typeof(VectorStoreCollectionMetadata) ? new VectorStoreCollectionMetadata { VectorStoreSystemName = "medvlp.exact_index", CollectionName = Name }
            : serviceType.IsInstanceOfType(_index) ? _index
            : serviceType.IsInstanceOfType(this) ? this
            : null;
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing && _ownsIndex)
        {
            _index.Dispose();
        }

        base.Dispose(disposing);
    }
}
