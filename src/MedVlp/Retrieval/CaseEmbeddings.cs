using MedVlp.Volumes;
using Microsoft.Extensions.AI;

namespace MedVlp.Retrieval;

/// <summary>
/// How the case collections turn a search value into a query embedding: an embedding as it is
/// (<c>float[]</c>, <see cref="ReadOnlyMemory{T}"/> of float, <see cref="Embedding{T}"/>), a <see cref="Volume"/> through
/// the volume generator, a <see cref="string"/> through the text generator (for example a model's
/// <see cref="Inference.VolumeEncoder"/> and <see cref="Inference.TextEncoder"/>).
/// </summary>
public sealed class CaseEmbeddings
{
    /// <summary>Embeds volumes searched for (null: searching by volume is not possible).</summary>
    public IEmbeddingGenerator<Volume, Embedding<float>>? Volumes { get; init; }

    /// <summary>Embeds text searched for (null: searching by text is not possible).</summary>
    public IEmbeddingGenerator<string, Embedding<float>>? Texts { get; init; }

    /// <summary>Both generators of a model.</summary>
    public static CaseEmbeddings From(VisionLanguageModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return new CaseEmbeddings { Volumes = model.VolumeEncoder, Texts = model.TextEncoder };
    }

    /// <summary>The query embedding of a search value.</summary>
    /// <exception cref="NotSupportedException">The value's type is not searchable, or its generator is missing.</exception>
    public async Task<ReadOnlyMemory<float>> EmbedAsync<TInput>(TInput value, CancellationToken cancellationToken)
        where TInput : notnull
    {
        switch (value)
        {
            case float[] array:
                return array;
            case ReadOnlyMemory<float> memory:
                return memory;
            case Embedding<float> embedding:
                return embedding.Vector;
            case Volume volume:
                if (Volumes is null)
                {
                    throw new NotSupportedException("Searching by volume needs a volume embedding generator (CaseEmbeddings.Volumes, e.g. model.VolumeEncoder).");
                }

                return (await Volumes.GenerateAsync([volume], cancellationToken: cancellationToken).ConfigureAwait(false))[0].Vector;
            case string text:
                if (Texts is null)
                {
                    throw new NotSupportedException("Searching by text needs a text embedding generator (CaseEmbeddings.Texts, e.g. model.TextEncoder).");
                }

                return (await Texts.GenerateAsync([text], cancellationToken: cancellationToken).ConfigureAwait(false))[0].Vector;
            default:
                throw new NotSupportedException($"Cannot search by a {value.GetType().Name}: use float[], ReadOnlyMemory<float>, Embedding<float>, a Volume or a string.");
        }
    }
}
