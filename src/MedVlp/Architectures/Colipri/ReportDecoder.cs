using MedVlp.Modeling.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace MedVlp.Architectures.Colipri;

/// <summary>
/// COLIPRI's report decoder (MedVlp's design; the paper's is unpublished): a causal BERT-layout transformer whose
/// layers cross-attend to the image's patch tokens (<c>embeddings</c>, <c>layer.{i}</c> with <c>crossattention</c>,
/// <c>lm_head</c>), trained teacher-forced with the shifted language-modelling loss.
/// </summary>
public sealed class ReportDecoder : Module<Tensor, Tensor>, INoWeightDecay
{
#pragma warning disable IDE1006, SA1300 // State-dict names follow Hugging Face BERT.
    private readonly BertEmbeddings embeddings;
    private readonly ModuleList<BertLayer> layer;
    private readonly Linear lm_head;
#pragma warning restore IDE1006, SA1300

    /// <summary>Creates the decoder.</summary>
    /// <param name="vocabularySize">Output vocabulary (the report tokenizer's).</param>
    /// <param name="width">Hidden width.</param>
    /// <param name="heads">Attention heads.</param>
    /// <param name="layers">Layers.</param>
    /// <param name="maxTokens">Longest sequence.</param>
    /// <param name="imageWidth">Width of the image tokens cross-attended to.</param>
    /// <param name="device">Where the weights live.</param>
    public ReportDecoder(int vocabularySize, int width, int heads, int layers, int maxTokens, int imageWidth, Device? device = null)
        : base(nameof(ReportDecoder))
    {
        embeddings = new BertEmbeddings(
            new BertEmbeddingsOptions { VocabSize = vocabularySize, HiddenSize = width, MaxPositionEmbeddings = maxTokens, HiddenDropout = 0 },
            device);
        layer = new ModuleList<BertLayer>();
        for (var i = 0; i < layers; i++)
        {
            layer.Add(new BertLayer(
                new BertLayerOptions
                {
                    HiddenSize = width,
                    Heads = heads,
                    IntermediateSize = 4 * width,
                    HiddenDropout = 0,
                    AttentionDropout = 0,
                    CrossAttentionWidth = imageWidth,
                },
                device));
        }

        lm_head = Linear(width, vocabularySize, device: device);
        MaxTokens = maxTokens;
        RegisterComponents();
        if (device is null || device.type != DeviceType.META)
        {
            using var noGrad = no_grad();
            foreach (var (name, p) in named_parameters())
            {
                if (p.Dimensions == 2 && !name.Contains("LayerNorm", StringComparison.Ordinal))
                {
                    init.normal_(p, 0, 0.02);
                }
            }
        }
    }

    /// <summary>Longest sequence.</summary>
    public int MaxTokens { get; }

    /// <inheritdoc/>
    public override Tensor forward(Tensor inputIds) => throw new NotSupportedException("Call forward(inputIds, attentionMask, imageTokens).");

    /// <summary>Next-token logits (B x T x V) for token ids (B x T) with their padding mask, given image tokens (B x N x imageWidth).</summary>
    public Tensor forward(Tensor inputIds, Tensor attentionMask, Tensor imageTokens)
    {
        ArgumentNullException.ThrowIfNull(inputIds);
        ArgumentNullException.ThrowIfNull(attentionMask);
        ArgumentNullException.ThrowIfNull(imageTokens);
        if (inputIds.shape[1] > MaxTokens)
        {
            throw new ArgumentException($"The decoder takes at most {MaxTokens} tokens, got {inputIds.shape[1]}.", nameof(inputIds));
        }

        using var scope = NewDisposeScope();
        var t = inputIds.shape[1];
        var mask = AttentionMask.And(AttentionMask.Causal(t, t, inputIds.device), AttentionMask.Padding(attentionMask));
        var hidden = embeddings.forward(inputIds, null);
        foreach (var l in layer)
        {
            hidden = l.forward(hidden, mask, imageTokens);
        }

        return scope.MoveToOuter(lm_head.forward(hidden));
    }

    /// <summary>
    /// Incremental decoding: next-token logits (B x T x V) of <paramref name="inputIds"/> (B x T) following the tokens
    /// already in <paramref name="cache"/> (whose keys and values it appends), given image tokens (B x N x imageWidth).
    /// No padding: every token is real.
    /// </summary>
    public Tensor Decode(Tensor inputIds, Tensor imageTokens, KeyValueCache cache)
    {
        ArgumentNullException.ThrowIfNull(inputIds);
        ArgumentNullException.ThrowIfNull(imageTokens);
        ArgumentNullException.ThrowIfNull(cache);
        if (cache.Count != layer.Count)
        {
            throw new ArgumentException($"The cache has {cache.Count} layers, the decoder {layer.Count}.", nameof(cache));
        }

        var past = cache.Length;
        var t = inputIds.shape[1];
        if (past + t > MaxTokens)
        {
            throw new ArgumentException($"The decoder takes at most {MaxTokens} tokens, got {past} cached + {t} new.", nameof(inputIds));
        }

        using var scope = NewDisposeScope();
        var mask = t == 1 ? null : AttentionMask.Causal(t, past + t, inputIds.device);
        var hidden = embeddings.forward(inputIds, null, positionOffset: past);
        for (var i = 0; i < layer.Count; i++)
        {
            hidden = layer[i].forward(hidden, mask, imageTokens, null, 0, cache[i]);
        }

        return scope.MoveToOuter(lm_head.forward(hidden));
    }

    /// <summary>The output vocabulary.</summary>
    public int VocabularySize => (int)lm_head.out_features;

    /// <summary>The number of layers (of a <see cref="KeyValueCache"/> for <see cref="Decode"/>).</summary>
    public int Layers => layer.Count;

    /// <inheritdoc/>
    public IEnumerable<string> NoWeightDecayParameterNames() => NoWeightDecay.Compose(this);
}
