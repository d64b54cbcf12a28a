using MedVlp.Volumes;
using Microsoft.Extensions.AI;
using static TorchSharp.torch;

namespace MedVlp.Inference;

/// <summary>
/// Embeds volumes with a <see cref="VisionLanguageModel"/>: applies the model's own preprocessing, runs the volume encoder
/// and returns L2-normalised embeddings. Also an <see cref="IEmbeddingGenerator{TInput, TEmbedding}"/> for
/// Microsoft.Extensions.AI pipelines. Safe for concurrent callers.
/// </summary>
/// <remarks>A view of its model: disposing the encoder does nothing; dispose the <see cref="VisionLanguageModel"/>.</remarks>
public sealed class VolumeEncoder : IEmbeddingGenerator<Volume, Embedding<float>>
{
    private readonly VisionLanguageModel _model;
    private readonly EmbeddingGeneratorMetadata _metadata;

    internal VolumeEncoder(VisionLanguageModel model)
    {
        _model = model;
        _metadata = new EmbeddingGeneratorMetadata("MedVlp", defaultModelId: "medvlp-volume-encoder", defaultModelDimensions: (model.Module as MedVlp.Modeling.IImageEncoder)?.EmbeddingDim);
    }

    /// <summary>Width of the embeddings.</summary>
    public int Dimensions => _model.ImageEncoder.EmbeddingDim;

    /// <summary>Volumes per forward pass in the batch methods. Default 16.</summary>
    public int BatchSize { get; init; } = 16;

    /// <summary>The L2-normalised embedding of one volume.</summary>
    public float[] Embed(Volume volume)
    {
        ArgumentNullException.ThrowIfNull(volume);
        return Embed([volume])[0];
    }

    /// <summary>The L2-normalised embeddings of several volumes, in order, computed <see cref="BatchSize"/> at a time.</summary>
    public float[][] Embed(IReadOnlyList<Volume> volumes, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(volumes);
        _model.ThrowIfDisposed();
        return EmbeddingRows.EmbedInBatches(volumes, BatchSize, chunk => _model.ImageEncoder.EncodeImages(_model.PrepareVolumes(chunk, cancellationToken)), cancellationToken);
    }

    /// <summary>The L2-normalised pooled features of the model's image backbone (before any projection), for models that
    /// evaluate their backbone downstream (<see cref="MedVlp.Modeling.IImageFeatureEncoder"/>: M-FLAG).</summary>
    /// <exception cref="NotSupportedException">The model's architecture does not expose backbone features.</exception>
    public float[][] EmbedBackboneFeatures(IReadOnlyList<Volume> volumes, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(volumes);
        _model.ThrowIfDisposed();
        var features = _model.Module as MedVlp.Modeling.IImageFeatureEncoder
            ?? throw new NotSupportedException($"Architecture \"{_model.Architecture}\" exposes no backbone features; embed with Embed instead.");
        return EmbeddingRows.EmbedInBatches(volumes, BatchSize, chunk => features.EncodeImageFeatures(_model.PrepareVolumes(chunk, cancellationToken)), cancellationToken);
    }

    /// <inheritdoc />
    public Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(IEnumerable<Volume> values, EmbeddingGenerationOptions? options = null, CancellationToken cancellationToken = default)
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

/// <summary>What <see cref="VolumeEncoder"/> and <see cref="TextEncoder"/> share: batching, copying out, and the
/// Microsoft.Extensions.AI plumbing.</summary>
internal static class EmbeddingRows
{
    /// <summary>Encodes <paramref name="items"/> <paramref name="batchSize"/> at a time without gradients, each batch
    /// in its own dispose scope, and copies the (B x E) results into managed rows.</summary>
    public static float[][] EmbedInBatches<T>(IReadOnlyList<T> items, int batchSize, Func<T[], Tensor> encode, CancellationToken cancellationToken)
    {
        var result = new float[items.Count][];
        for (var start = 0; start < items.Count; start += batchSize)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var chunk = items.Skip(start).Take(batchSize).ToArray();
            using var noGrad = no_grad();
            using var scope = NewDisposeScope();
            CopyTo(encode(chunk), result, start);
        }

        return result;
    }

    public static Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync<T>(T[] values, Func<IReadOnlyList<T>, CancellationToken, float[][]> embed,
        EmbeddingGeneratorMetadata metadata, CancellationToken cancellationToken) =>
        Task.Run(() => ToGenerated(embed(values, cancellationToken), metadata.DefaultModelId), cancellationToken);

    public static object? GetService(object encoder, VisionLanguageModel model, EmbeddingGeneratorMetadata metadata, Type serviceType, object? serviceKey)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        return serviceKey is not null ? null
            : serviceType == typeof(EmbeddingGeneratorMetadata) ? metadata
            : serviceType.IsInstanceOfType(encoder) ? encoder
            : serviceType.IsInstanceOfType(model) ? model
            : null;
    }

    private static void CopyTo(Tensor embeddings, float[][] rows, int start)
    {
        var b = (int)embeddings.shape[0];
        var e = (int)embeddings.shape[1];
        var flat = embeddings.cpu().contiguous().data<float>().ToArray();
        for (var n = 0; n < b; n++)
        {
            rows[start + n] = flat.AsSpan(n * e, e).ToArray();
        }
    }

    private static GeneratedEmbeddings<Embedding<float>> ToGenerated(float[][] rows, string? modelId)
    {
        var created = DateTimeOffset.UtcNow;
        return new GeneratedEmbeddings<Embedding<float>>(rows.Select(r => new Embedding<float>(r) { ModelId = modelId, CreatedAt = created }));
    }
}
