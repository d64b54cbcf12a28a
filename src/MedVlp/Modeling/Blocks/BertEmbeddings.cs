using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace MedVlp.Modeling.Blocks;

/// <summary>Sizes of <see cref="BertEmbeddings"/>.</summary>
public sealed record BertEmbeddingsOptions
{
    /// <summary>Vocabulary size (bert-base-uncased: 30522).</summary>
    public int VocabSize { get; init; } = 30522;

    /// <summary>Hidden width.</summary>
    public int HiddenSize { get; init; } = 768;

    /// <summary>Rows of the learned absolute position table.</summary>
    public int MaxPositionEmbeddings { get; init; } = 512;

    /// <summary>Token types (segments); 0 for none (the LAVIS Q-Former has no <c>token_type_embeddings</c>).</summary>
    public int TypeVocabSize { get; init; } = 2;

    /// <summary>LayerNorm epsilon.</summary>
    public double LayerNormEps { get; init; } = 1e-12;

    /// <summary>Dropout (training only).</summary>
    public double HiddenDropout { get; init; } = 0.1;
}

/// <summary>
/// BERT's embeddings (Hugging Face / LAVIS names: <c>word_embeddings</c>, <c>position_embeddings</c>, optional
/// <c>token_type_embeddings</c>, <c>LayerNorm</c>): token (or given <c>inputs_embeds</c>) + token type + absolute
/// position (from an offset, for decoding after cached tokens), then LayerNorm and dropout. Learned query embeddings
/// (Q-Former) may be prepended; they get no position.
/// </summary>
public sealed class BertEmbeddings : Module<Tensor, Tensor>, INoWeightDecay
{
#pragma warning disable IDE1006, SA1300 // State-dict names follow Hugging Face.
    private readonly Embedding word_embeddings;
    private readonly Embedding position_embeddings;
    private readonly Embedding? token_type_embeddings;
    private readonly LayerNorm LayerNorm;
    private readonly Dropout dropout;
#pragma warning restore IDE1006, SA1300

    /// <summary>Creates the embeddings.</summary>
    public BertEmbeddings(BertEmbeddingsOptions options, Device? device = null)
        : base(nameof(BertEmbeddings))
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.VocabSize <= 0 || options.HiddenSize <= 0 || options.MaxPositionEmbeddings <= 0 || options.TypeVocabSize < 0 || options.LayerNormEps <= 0 || options.HiddenDropout is < 0 or >= 1)
        {
            throw new ArgumentException($"Invalid BERT embedding options {options}.", nameof(options));
        }

        Options = options;
        word_embeddings = Embedding(options.VocabSize, options.HiddenSize, device: device);
        position_embeddings = Embedding(options.MaxPositionEmbeddings, options.HiddenSize, device: device);
        token_type_embeddings = options.TypeVocabSize > 0 ? Embedding(options.TypeVocabSize, options.HiddenSize, device: device) : null;
        LayerNorm = nn.LayerNorm(options.HiddenSize, options.LayerNormEps, device: device);
        dropout = Dropout(options.HiddenDropout);
        RegisterComponents();
    }

    /// <summary>The options.</summary>
    public BertEmbeddingsOptions Options { get; }

    /// <summary>The token table (B x T ids to B x T x hidden), e.g. to build <c>inputs_embeds</c> or tie an output layer.</summary>
    public Embedding WordEmbeddings => word_embeddings;

    /// <inheritdoc/>
    public override Tensor forward(Tensor inputIds) => forward(inputIds, null);

    /// <summary>Embeds tokens given as ids or as <paramref name="inputsEmbeds"/>.</summary>
    /// <param name="inputIds">Token ids (B x T, int64), or null when <paramref name="inputsEmbeds"/> or only <paramref name="queryEmbeds"/> are given.</param>
    /// <param name="inputsEmbeds">Token vectors (B x T x hidden) instead of ids.</param>
    /// <param name="tokenTypeIds">Token types (B x T); zeros when null.</param>
    /// <param name="positionOffset">Position of the first token (the number of cached tokens when decoding).</param>
    /// <param name="positionIds">Explicit positions (B x T or 1 x T); <c>offset .. offset + T - 1</c> when null.</param>
    /// <param name="queryEmbeds">Learned queries (B x Q x hidden) prepended without positions (LAVIS Q-Former).</param>
    public Tensor forward(Tensor? inputIds, Tensor? inputsEmbeds, Tensor? tokenTypeIds = null, long positionOffset = 0, Tensor? positionIds = null, Tensor? queryEmbeds = null)
    {
        if (inputIds is not null && inputsEmbeds is not null)
        {
            throw new ArgumentException("Give token ids or inputs_embeds, not both.");
        }

        if (inputIds is null && inputsEmbeds is null && queryEmbeds is null)
        {
            throw new ArgumentException("Give token ids, inputs_embeds or query embeddings.");
        }

        using var scope = NewDisposeScope();
        Tensor? x = null;
        if (inputIds is not null || inputsEmbeds is not null)
        {
            x = inputsEmbeds ?? word_embeddings.forward(inputIds!);
            var length = x.shape[1];
            if (positionOffset < 0 || positionOffset + length > Options.MaxPositionEmbeddings)
            {
                throw new ArgumentException($"Tokens {positionOffset} .. {positionOffset + length - 1} exceed the {Options.MaxPositionEmbeddings} learned positions.");
            }

            if (token_type_embeddings is null && tokenTypeIds is not null)
            {
                throw new ArgumentException("These embeddings have no token types (type_vocab_size = 0).", nameof(tokenTypeIds));
            }

            // Summed as token + position + type (Hugging Face adds the type first; the results differ by float rounding
            // only, and this order keeps MedVlp's earlier BERT bit for bit).
            var positions = positionIds ?? arange(positionOffset, positionOffset + length, dtype: ScalarType.Int64, device: x.device).unsqueeze(0);
            x = x + position_embeddings.forward(positions);
            if (token_type_embeddings is not null)
            {
                var types = tokenTypeIds ?? zeros(x.shape[0], length, ScalarType.Int64, x.device);
                x = x + token_type_embeddings.forward(types);
            }
        }

        if (queryEmbeds is not null)
        {
            x = x is null ? queryEmbeds : cat([queryEmbeds, x], 1);
        }

        return scope.MoveToOuter(dropout.forward(LayerNorm.forward(x!)));
    }

    /// <inheritdoc/>
    public IEnumerable<string> NoWeightDecayParameterNames() => NoWeightDecay.Compose(this);
}
