using Microsoft.Extensions.AI;
using static TorchSharp.torch;

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
        _metadata = new EmbeddingGeneratorMetadata("MedVlp", defaultModelId: "medvlp-text-encoder", defaultModelDimensions: model.Config.EmbeddingDim);
    }

    /// <summary>Width of the embeddings.</summary>
    public int Dimensions => _model.Config.EmbeddingDim;

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
        var result = new float[texts.Count][];
        for (var start = 0; start < texts.Count; start += BatchSize)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var chunk = texts.Skip(start).Take(BatchSize).ToArray();
            using var noGrad = no_grad();
            using var scope = NewDisposeScope();
            var (ids, mask) = _model.PrepareTexts(chunk);
            EmbeddingRows.CopyTo(_model.Module.EncodeTexts(ids, mask), result, start);
        }

        return result;
    }

    /// <inheritdoc />
    public Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(IEnumerable<string> values, EmbeddingGenerationOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(values);
        var list = values.ToArray();
        return Task.Run(() => EmbeddingRows.ToGenerated(Embed(list, cancellationToken), _metadata.DefaultModelId), cancellationToken);
    }

    /// <inheritdoc />
    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        return serviceKey is not null ? null
            : serviceType == typeof(EmbeddingGeneratorMetadata) ? _metadata
            : serviceType.IsInstanceOfType(this) ? this
            : serviceType.IsInstanceOfType(_model) ? _model
            : null;
    }

    /// <summary>Does nothing: the encoder is a view of its model, which owns the weights.</summary>
    public void Dispose()
    {
    }
}
