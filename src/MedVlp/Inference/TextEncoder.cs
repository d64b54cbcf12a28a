using Microsoft.Extensions.AI;

namespace MedVlp.Inference;

/// <summary>
/// Embeds report text or prompts with a <see cref="VisionLanguageModel"/>'s tokenizer and text encoder, returning
/// L2-normalised embeddings in the same space as <see cref="VolumeEncoder"/>. Also an
/// <see cref="IEmbeddingGenerator{TInput, TEmbedding}"/>. Safe for concurrent callers.
/// </summary>
/// <remarks>A view of its model: disposing the encoder does nothing; dispose the <see cref="VisionLanguageModel"/>.</remarks>
public sealed class TextEncoder : IEmbeddingGenerator<string, Embedding<float>>
{
    private readonly VisionLanguageModel _model;
    private readonly EmbeddingGeneratorMetadata _metadata;

    internal TextEncoder(VisionLanguageModel model)
    {
        _model = model;
        _metadata = new EmbeddingGeneratorMetadata("MedVlp", defaultModelId: "medvlp-text-encoder", defaultModelDimensions: (model.Module as MedVlp.Modeling.IDualEncoder)?.EmbeddingDim);
    }

    /// <summary>Width of the embeddings.</summary>
    public int Dimensions => _model.DualEncoder.EmbeddingDim;

    /// <summary>Texts per forward pass in the batch methods. Default 64.</summary>
    public int BatchSize { get; init; } = 64;

    /// <summary>The L2-normalised embedding of one text (truncated to the model's maximum token count).</summary>
    public float[] Embed(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return Embed([text])[0];
    }

    /// <summary>The L2-normalised embeddings of several texts, in order.</summary>
    public float[][] Embed(IReadOnlyList<string> texts, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(texts);
        _model.ThrowIfDisposed();
        return EmbeddingRows.EmbedInBatches(texts, BatchSize, chunk =>
        {
            var (ids, mask) = _model.PrepareTexts(chunk);
            return _model.DualEncoder.EncodeTexts(ids, mask);
        }, cancellationToken);
    }

    /// <inheritdoc />
    public Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(IEnumerable<string> values, EmbeddingGenerationOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(values);
        return EmbeddingRows.GenerateAsync(values.ToArray(), Embed, _metadata, cancellationToken);
    }

    /// <inheritdoc />
    public object? GetService(Type serviceType, object? serviceKey = null)
        => EmbeddingRows.GetService(this, _model, _metadata, serviceType, serviceKey);

    /// <summary>Does nothing: the encoder is a view of its model, which owns the weights.</summary>
    public void Dispose()
    {
    }
}
