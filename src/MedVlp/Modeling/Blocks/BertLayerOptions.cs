namespace MedVlp.Modeling.Blocks;

/// <summary>Sizes and options of one <see cref="BertLayer"/> (Hugging Face / LAVIS BERT).</summary>
public sealed record BertLayerOptions
{
    /// <summary>Hidden width (bert-base: 768).</summary>
    public int HiddenSize { get; init; } = 768;

    /// <summary>Attention heads (bert-base: 12).</summary>
    public int Heads { get; init; } = 12;

    /// <summary>Feed-forward hidden size (bert-base: 3072).</summary>
    public int IntermediateSize { get; init; } = 3072;

    /// <summary>LayerNorm epsilon.</summary>
    public double LayerNormEps { get; init; } = 1e-12;

    /// <summary>Dropout on hidden states (training only).</summary>
    public double HiddenDropout { get; init; } = 0.1;

    /// <summary>Dropout on attention probabilities (training only).</summary>
    public double AttentionDropout { get; init; } = 0.1;

    /// <summary>The feed-forward activation (BERT: exact GELU).</summary>
    public MlpActivation Activation { get; init; } = MlpActivation.Gelu;

    /// <summary>
    /// Width of the encoder states the layer cross-attends to (<c>crossattention</c>, keys and values
    /// <c>encoder_width -&gt; hidden</c>; BLIP-2: 1408); no cross-attention when null.
    /// </summary>
    public int? CrossAttentionWidth { get; init; }

    /// <summary>Whether the layer has the BLIP-2 Q-Former's separate feed-forward for query tokens (<c>intermediate_query</c>, <c>output_query</c>).</summary>
    public bool QueryFeedForward { get; init; }

    internal void Validate()
    {
        if (HiddenSize <= 0 || Heads <= 0 || HiddenSize % Heads != 0 || IntermediateSize <= 0 || LayerNormEps <= 0 ||
            HiddenDropout is < 0 or >= 1 || AttentionDropout is < 0 or >= 1 || CrossAttentionWidth is <= 0)
        {
            throw new ArgumentException($"Invalid BERT layer options {this}: the hidden size must be a positive multiple of the heads, sizes positive, dropouts in [0, 1).");
        }
    }
}
