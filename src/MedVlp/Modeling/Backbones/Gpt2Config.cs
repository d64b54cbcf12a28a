namespace MedVlp.Modeling.Backbones;

/// <summary>
/// Sizes of a GPT-2 language model, named as in Hugging Face's <c>GPT2Config</c> (<c>n_embd</c>, <c>n_layer</c>, ...)
/// so that a real <c>config.json</c> deserialises into it with snake_case names.
/// </summary>
public sealed record Gpt2Config
{
    /// <summary>GPT-2 small: 50257 tokens, 1024 positions, 12 layers of width 768, 12 heads.</summary>
    public static Gpt2Config Small { get; } = new();

    /// <summary>Vocabulary size.</summary>
    public int VocabSize { get; init; } = 50257;

    /// <summary>Largest sequence length (<c>n_positions</c>).</summary>
    public int NPositions { get; init; } = 1024;

    /// <summary>Width (<c>n_embd</c>).</summary>
    public int NEmbd { get; init; } = 768;

    /// <summary>Layers (<c>n_layer</c>).</summary>
    public int NLayer { get; init; } = 12;

    /// <summary>Attention heads (<c>n_head</c>).</summary>
    public int NHead { get; init; } = 12;

    /// <summary>MLP hidden size (<c>n_inner</c>); 4 x <see cref="NEmbd"/> when null.</summary>
    public int? NInner { get; init; }

    /// <summary>LayerNorm epsilon.</summary>
    public double LayerNormEpsilon { get; init; } = 1e-5;

    /// <summary>Dropout on the embeddings.</summary>
    public double EmbdPdrop { get; init; } = 0.1;

    /// <summary>Dropout on residual branches.</summary>
    public double ResidPdrop { get; init; } = 0.1;

    /// <summary>Dropout on attention probabilities.</summary>
    public double AttnPdrop { get; init; } = 0.1;

    /// <summary>Whether <c>lm_head</c> shares <c>transformer.wte.weight</c> (GPT-2: yes; then there is no separate <c>lm_head.weight</c>).</summary>
    public bool TieWordEmbeddings { get; init; } = true;

    internal void Validate()
    {
        if (VocabSize <= 0 || NPositions <= 0 || NEmbd <= 0 || NLayer < 0 || NHead <= 0 || NEmbd % NHead != 0 || NInner is <= 0 ||
            LayerNormEpsilon <= 0 || EmbdPdrop is < 0 or >= 1 || ResidPdrop is < 0 or >= 1 || AttnPdrop is < 0 or >= 1)
        {
            throw new ArgumentException($"Invalid GPT-2 configuration {this}: n_embd must be a positive multiple of n_head, sizes positive, dropouts in [0, 1).");
        }
    }
}
