using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace MedVlp.Modeling.Blocks;

/// <summary>
/// A BERT layer with Hugging Face's and LAVIS' names: <c>attention</c>, optional <c>crossattention</c>,
/// <c>intermediate</c>, <c>output</c>, and for the BLIP-2 Q-Former <c>intermediate_query</c> / <c>output_query</c>.
/// With <c>queryLength</c> &gt; 0 it follows LAVIS' Q-Former: the first <c>queryLength</c> tokens (learned queries) and
/// the rest (text) share self-attention; only the queries cross-attend to the encoder states and they go through the
/// query feed-forward, the text through the ordinary one. With <c>queryLength</c> = 0 it is Hugging Face's
/// <c>BertLayer</c> (cross-attention of all tokens when encoder states are given).
/// </summary>
public sealed class BertLayer : Module<Tensor, Tensor>, INoWeightDecay
{
#pragma warning disable IDE1006, SA1300 // State-dict names follow Hugging Face / LAVIS.
    private readonly BertAttention attention;
    private readonly BertAttention? crossattention;
    private readonly BertIntermediate intermediate;
    private readonly BertOutput output;
    private readonly BertIntermediate? intermediate_query;
    private readonly BertOutput? output_query;
#pragma warning restore IDE1006, SA1300

    /// <summary>Creates the layer.</summary>
    public BertLayer(BertLayerOptions options, Device? device = null)
        : base(nameof(BertLayer))
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Options = options;
        attention = new BertAttention(options, null, device);
        if (options.CrossAttentionWidth is { } width)
        {
            crossattention = new BertAttention(options, width, device);
        }

        intermediate = new BertIntermediate(options.HiddenSize, options.IntermediateSize, options.Activation, device);
        output = new BertOutput(options.IntermediateSize, options.HiddenSize, options.LayerNormEps, options.HiddenDropout, device);
        if (options.QueryFeedForward)
        {
            intermediate_query = new BertIntermediate(options.HiddenSize, options.IntermediateSize, options.Activation, device);
            output_query = new BertOutput(options.IntermediateSize, options.HiddenSize, options.LayerNormEps, options.HiddenDropout, device);
        }

        RegisterComponents();
    }

    /// <summary>The options.</summary>
    public BertLayerOptions Options { get; }

    /// <summary>Whether the layer has <c>crossattention</c>.</summary>
    public bool HasCrossAttention => crossattention is not null;

    /// <inheritdoc/>
    public override Tensor forward(Tensor hidden) => forward(hidden, null);

    /// <summary>The layer over (B x T x hidden) states.</summary>
    /// <param name="hidden">Token states; with <paramref name="queryLength"/> &gt; 0 the learned queries come first.</param>
    /// <param name="mask">Self-attention mask broadcastable to (B x heads x T x keys), boolean or additive (see <see cref="AttentionMask"/>).</param>
    /// <param name="encoderHidden">States to cross-attend to (B x S x crossAttentionWidth).</param>
    /// <param name="encoderMask">Cross-attention mask broadcastable to (B x heads x T x S).</param>
    /// <param name="queryLength">Leading query tokens (Q-Former); 0 for a plain BERT layer.</param>
    /// <param name="cache">Self-attention key/value cache for incremental decoding.</param>
    public Tensor forward(Tensor hidden, Tensor? mask, Tensor? encoderHidden = null, Tensor? encoderMask = null, long queryLength = 0, AttentionCache? cache = null)
    {
        ArgumentNullException.ThrowIfNull(hidden);
        if (queryLength < 0 || queryLength > hidden.shape[1])
        {
            throw new ArgumentOutOfRangeException(nameof(queryLength), queryLength, $"Between 0 and the {hidden.shape[1]} tokens.");
        }

        using var scope = NewDisposeScope();
        var attended = attention.forward(hidden, mask, null, cache);
        if (queryLength == 0)
        {
            if (crossattention is not null && encoderHidden is not null)
            {
                attended = crossattention.forward(attended, encoderMask, encoderHidden);
            }

            return scope.MoveToOuter(output.forward(intermediate.forward(attended), attended));
        }

        if (intermediate_query is null || output_query is null)
        {
            throw new InvalidOperationException("Query tokens need a layer built with QueryFeedForward = true (intermediate_query, output_query).");
        }

        var queries = attended.narrow(1, 0, queryLength);
        if (crossattention is not null)
        {
            if (encoderHidden is null)
            {
                throw new ArgumentException("This layer cross-attends: the query tokens need encoder states.", nameof(encoderHidden));
            }

            queries = crossattention.forward(queries, encoderMask, encoderHidden);
        }

        var result = output_query.forward(intermediate_query.forward(queries), queries);
        if (attended.shape[1] > queryLength)
        {
            var text = attended.narrow(1, queryLength, attended.shape[1] - queryLength);
            result = cat([result, output.forward(intermediate.forward(text), text)], 1);
        }

        return scope.MoveToOuter(result);
    }

    /// <inheritdoc/>
    public IEnumerable<string> NoWeightDecayParameterNames() => NoWeightDecay.Compose(this);
}
