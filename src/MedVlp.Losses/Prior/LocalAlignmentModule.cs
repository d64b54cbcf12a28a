using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MedVlp.Losses;

/// <summary>Input of <see cref="LocalAlignmentModule"/>.</summary>
/// <param name="ImageTokens">Local image features (B x N x D), e.g. PRIOR's 49 projected layer-4 tokens.</param>
/// <param name="Sentences">Sentence vectors (B x S x D), zero-padded when reports have fewer sentences.</param>
/// <param name="SentenceMask">Which sentences are real (B x S, bool); null when all are.</param>
public sealed record LocalAlignmentInput(Tensor ImageTokens, Tensor Sentences, Tensor? SentenceMask = null);

/// <summary>Output of <see cref="LocalAlignmentModule"/>.</summary>
/// <param name="ImageContext">c_i (B x N x D): for each image token, the text context A_it V_T.</param>
/// <param name="ImageAttention">A_it (B x N x S) = sigmoid(Q_I K_T^T / sqrt(D)); padded sentences get 0.</param>
/// <param name="TextContext">c_t (B x S x D): for each sentence, the image context A_ti V_I.</param>
/// <param name="TextAttention">A_ti (B x S x N) = sigmoid(Q_T K_I^T / sqrt(D)).</param>
public sealed record LocalAlignmentOutput(Tensor ImageContext, Tensor ImageAttention, Tensor TextContext, Tensor TextAttention);

/// <summary>
/// PRIOR's local alignment module: cross-attention between image tokens and sentences with separate
/// Q, K, V projections per modality and a SIGMOID (not softmax) over the scores. Parameter names follow the
/// released code: <c>query1/key1/value1</c> (image), <c>query2/key2/value2</c> (text).
/// </summary>
public sealed class LocalAlignmentModule : nn.Module<LocalAlignmentInput, LocalAlignmentOutput>
{
#pragma warning disable IDE1006, CA1707 // PyTorch field names keep state dicts 1:1.
    private readonly Linear query1;
    private readonly Linear key1;
    private readonly Linear value1;
    private readonly Linear query2;
    private readonly Linear key2;
    private readonly Linear value2;
    private readonly Dropout dropout1;
    private readonly Dropout dropout2;
#pragma warning restore IDE1006, CA1707

    /// <summary>Creates the module.</summary>
    /// <param name="dimension">The embedding width D (PRIOR: 768).</param>
    /// <param name="dropout">Dropout on the attention weights (PRIOR: 0).</param>
    public LocalAlignmentModule(int dimension = 768, double dropout = 0.0)
        : base(nameof(LocalAlignmentModule))
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(dimension, 1);
        Dimension = dimension;
        query1 = nn.Linear(dimension, dimension);
        key1 = nn.Linear(dimension, dimension);
        value1 = nn.Linear(dimension, dimension);
        query2 = nn.Linear(dimension, dimension);
        key2 = nn.Linear(dimension, dimension);
        value2 = nn.Linear(dimension, dimension);
        dropout1 = nn.Dropout(dropout);
        dropout2 = nn.Dropout(dropout);
        RegisterComponents();
    }

    /// <summary>The embedding width D.</summary>
    public int Dimension { get; }

    /// <inheritdoc />
    public override LocalAlignmentOutput forward(LocalAlignmentInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        Check.Rank(input.ImageTokens, 3, nameof(input.ImageTokens), "B x N x D");
        Check.Rank(input.Sentences, 3, nameof(input.Sentences), "B x S x D");
        if (input.ImageTokens.shape[0] != input.Sentences.shape[0] || input.ImageTokens.shape[2] != Dimension || input.Sentences.shape[2] != Dimension)
        {
            throw new ArgumentException(
                $"ImageTokens [{string.Join(", ", input.ImageTokens.shape)}] and Sentences [{string.Join(", ", input.Sentences.shape)}] must be B x N x {Dimension} and B x S x {Dimension}.",
                nameof(input));
        }

        using var scope = NewDisposeScope();
        var image = input.ImageTokens;
        var text = input.Sentences;
        var scale = 1.0 / Math.Sqrt(Dimension);

        // Text queries attend to image tokens: A_ti = sigmoid(Q_T K_I^T / sqrt(D)), c_t = A_ti V_I.
        var textAttention = query2.forward(text).matmul(key1.forward(image).transpose(1, 2)).mul_(scale).sigmoid();
        var textContext = dropout1.forward(textAttention).matmul(value1.forward(image));

        // Image queries attend to sentences: A_it = sigmoid(Q_I K_T^T / sqrt(D)), c_i = A_it V_T.
        var imageAttention = query1.forward(image).matmul(key2.forward(text).transpose(1, 2)).mul_(scale).sigmoid();
        if (input.SentenceMask is not null)
        {
            Check.Rank(input.SentenceMask, 2, nameof(input.SentenceMask), "B x S");
            imageAttention = imageAttention.masked_fill(input.SentenceMask.logical_not().unsqueeze(1), 0.0);
        }

        var imageContext = dropout2.forward(imageAttention).matmul(value2.forward(text));
        return new LocalAlignmentOutput(
            scope.MoveToOuter(imageContext), scope.MoveToOuter(imageAttention), scope.MoveToOuter(textContext), scope.MoveToOuter(textAttention));
    }
}
