using MedVlp.Losses;
using MedVlp.Modeling;
using MedVlp.Modeling.Backbones;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace MedVlp.Architectures.MFlag;

/// <summary>What one M-FLAG forward produces.</summary>
/// <param name="ImageFeature">The raw pooled ResNet feature [B, 2048] (the orthogonality loss's input).</param>
/// <param name="ImageEmbedding">The projected image feature [B, EmbeddingDim] (<c>proj_v</c>).</param>
/// <param name="TextEmbedding">The projected CLS state of the frozen text encoder [B, EmbeddingDim] (<c>proj_t</c>).</param>
public sealed record MFlagOutput(Tensor ImageFeature, Tensor ImageEmbedding, Tensor TextEmbedding) : IDisposable
{
    /// <inheritdoc />
    public void Dispose()
    {
        ImageFeature.Dispose();
        ImageEmbedding.Dispose();
        TextEmbedding.Dispose();
    }
}

/// <summary>
/// M-FLAG (Liu et al., "M-FLAG: Medical Vision-Language Pre-training with Frozen Language Models and Latent Space
/// Geometry Optimization", MICCAI 2023) in the layout of the released <c>ResNet_CXRBert</c>: <c>encoder</c> (a
/// torchvision-named ResNet-50, trainable), <c>lm_model</c> (BERT; frozen by <see cref="DefaultFreeze"/> and then run under
/// <c>no_grad</c>, nothing upstream of token ids training, and cacheable per token sequence), and the projectors
/// <c>proj_v</c> = Linear(2048, 2048), BatchNorm1d, ReLU, Linear(2048, 1024), BatchNorm1d(affine = false) and <c>proj_t</c>
/// (the same from the 768-wide CLS state). The loss (<see cref="Loss"/>) is <see cref="OrthogonalityLoss"/> on the raw
/// pooled image feature plus <see cref="AlignmentLoss"/> between the two projections. As an <see cref="IDualEncoder"/> it
/// embeds images and reports into the shared space (normalised <c>proj_v</c> / <c>proj_t</c> outputs), for embedding,
/// probes and zero-shot classification.
/// </summary>
public sealed class MFlagModel : CompositeModel, IDualEncoder, IImageFeatureEncoder, IBertTextEncoderModel
{
    /// <summary>The component names, as the released code.</summary>
    public const string ImageComponent = "encoder", TextComponent = "lm_model", ImageProjectorComponent = "proj_v", TextProjectorComponent = "proj_t";

#pragma warning disable IDE1006, SA1300 // State-dict names follow the released ResNet_CXRBert.
    private readonly ResNet encoder;
    private readonly Sequential proj_v;
    private readonly Sequential proj_t;
    private readonly BertModel lm_model;
#pragma warning restore IDE1006, SA1300
    private readonly MFlagConfig _config;
    private readonly FrozenTextCache _cache = new();

    /// <summary>Builds the model with fresh weights (torchvision's ResNet initialisation, BERT's, PyTorch's Linear defaults).</summary>
    /// <param name="config">Sizes.</param>
    /// <param name="device">Where the parameters live (<c>meta</c>: the structure without memory).</param>
    public MFlagModel(MFlagConfig config, Device? device = null)
        : base(nameof(MFlagModel))
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        _config = config;
        encoder = new ResNet(config.Image with { NumClasses = null }, device);
        proj_v = Projector(config.Image.FeatureWidth, config.ProjectionHidden, config.EmbeddingDim, device);
        proj_t = Projector(config.Text.HiddenSize, config.ProjectionHidden, config.EmbeddingDim, device);
        lm_model = new BertModel(config.Text, device);
        RegisterComponents();
    }

    /// <summary>M-FLAG's freezing: the language model (pass it as <see cref="ModelCreateOptions.Freeze"/>).</summary>
    public static FreezePolicy DefaultFreeze { get; } = FreezePolicy.Of(TextComponent);

    /// <inheritdoc />
    public override ArchitectureConfig Config => _config;

    /// <summary>The sizes.</summary>
    public MFlagConfig Sizes => _config;

    /// <summary>The image encoder.</summary>
    public ResNet ImageEncoder => encoder;

    /// <summary>The text encoder.</summary>
    public BertModel TextEncoder => lm_model;

    string IBertTextEncoderModel.TextEncoderComponent => TextComponent;

    /// <summary>Cache the CLS states of a frozen <c>lm_model</c> per token sequence (keyed by its weights' fingerprint and the ids). Off by default.</summary>
    public bool CacheFrozenTextOutputs { get; set; }

    /// <summary>The number of token sequences in the frozen-text cache.</summary>
    public int CachedTextOutputs => _cache.Count;

    /// <summary>Runs the image encoder, the text encoder and both projectors.</summary>
    /// <param name="images">[B, C, H, W] (C = <see cref="ResNetConfig.InChannels"/>).</param>
    /// <param name="inputIds">[B, T] int64 token ids.</param>
    /// <param name="attentionMask">[B, T], 1 = token, 0 = padding.</param>
    public MFlagOutput Forward(Tensor images, Tensor inputIds, Tensor attentionMask)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.shape[0] != inputIds.shape[0])
        {
            throw new ArgumentException($"M-FLAG needs one report per image, got {images.shape[0]} images and {inputIds.shape[0]} token sequences.", nameof(inputIds));
        }

        using var scope = NewDisposeScope();
        var imageFeature = encoder.Features(images).Pooled;
        var text = EncodeTextCls(inputIds, attentionMask);
        var output = new MFlagOutput(imageFeature, proj_v.forward(imageFeature), proj_t.forward(text));
        scope.MoveToOuter(output.ImageFeature, output.ImageEmbedding, output.TextEmbedding);
        return output;
    }

    /// <summary>The CLS state (<c>last_hidden_state[:, 0]</c>) of the text encoder; under <c>no_grad</c> (and cached
    /// when <see cref="CacheFrozenTextOutputs"/>) while <c>lm_model</c> is frozen.</summary>
    public Tensor EncodeTextCls(Tensor inputIds, Tensor attentionMask)
    {
        ArgumentNullException.ThrowIfNull(inputIds);
        ArgumentNullException.ThrowIfNull(attentionMask);
        if (inputIds.dim() != 2 || !inputIds.shape.SequenceEqual(attentionMask.shape) || inputIds.shape[1] > _config.MaxTextTokens)
        {
            throw new ArgumentException($"M-FLAG text input: expected ids and mask of one shape [B, T] with T <= {_config.MaxTextTokens}, got [{string.Join(", ", inputIds.shape)}] and [{string.Join(", ", attentionMask.shape)}].", nameof(inputIds));
        }

        using var scope = NewDisposeScope();
        Tensor Run(Tensor ids, Tensor mask) => lm_model.forward(ids, mask)[.., 0].contiguous();
        if (!IsFrozen(TextComponent))
        {
            return scope.MoveToOuter(Run(inputIds, attentionMask));
        }

        using var noGrad = no_grad();
        var cls = CacheFrozenTextOutputs ? _cache.Get(WeightsFingerprint(TextComponent), inputIds, attentionMask, Run) : Run(inputIds, attentionMask);
        return scope.MoveToOuter(cls);
    }

    /// <summary>M-FLAG's loss on one forward: orthogonality of the raw image feature plus alignment of the projections
    /// (terms <c>orthogonality</c>, <c>alignment</c>).</summary>
    public static LossOutput Loss(MFlagOutput output, OrthogonalityLoss orthogonality, AlignmentLoss alignment)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(orthogonality);
        ArgumentNullException.ThrowIfNull(alignment);
        using var scope = NewDisposeScope();
        var orth = orthogonality.forward(output.ImageFeature).Total;
        var align = alignment.forward(new EmbeddingPair(output.ImageEmbedding, output.TextEmbedding)).Total;
        var result = new LossOutput(orth + align, [new("orthogonality", orth.detach()), new("alignment", align.detach())]);
        return result.MoveToOuter(scope);
    }

    /// <inheritdoc />
    public int EmbeddingDim => _config.EmbeddingDim;

    /// <inheritdoc />
    public IReadOnlyList<long> ImageInputShape => [_config.Image.InChannels, _config.ImageSize, _config.ImageSize];

    /// <inheritdoc />
    public int MaxTextTokens => _config.MaxTextTokens;

    /// <summary>L2-normalised <c>proj_v</c> of the pooled image feature.</summary>
    public Tensor EncodeImages(Tensor images)
    {
        ArgumentNullException.ThrowIfNull(images);
        using var scope = NewDisposeScope();
        return scope.MoveToOuter(F.normalize(proj_v.forward(encoder.Features(images).Pooled), dim: -1));
    }

    /// <inheritdoc />
    public int FeatureDim => _config.Image.FeatureWidth;

    /// <summary>The L2-normalised pooled ResNet feature (what the released code keeps for downstream tasks).</summary>
    public Tensor EncodeImageFeatures(Tensor images)
    {
        ArgumentNullException.ThrowIfNull(images);
        using var scope = NewDisposeScope();
        return scope.MoveToOuter(F.normalize(encoder.Features(images).Pooled, dim: -1));
    }

    /// <summary>L2-normalised <c>proj_t</c> of the text encoder's CLS state.</summary>
    public Tensor EncodeTexts(Tensor inputIds, Tensor attentionMask)
    {
        using var scope = NewDisposeScope();
        return scope.MoveToOuter(F.normalize(proj_t.forward(EncodeTextCls(inputIds, attentionMask)), dim: -1));
    }

    /// <summary>The fixed zero-shot scale <see cref="MFlagConfig.ZeroShotLogitScale"/> (M-FLAG learns none).</summary>
    public Tensor LogitScale() => tensor(_config.ZeroShotLogitScale, device: encoder.parameters().First().device);

    /// <summary>Empties the frozen-text cache.</summary>
    public void ClearTextCache() => _cache.Clear();

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _cache.Clear();
        }

        base.Dispose(disposing);
    }

    private static Sequential Projector(int input, int hidden, int output, Device? device) => Sequential(
        Linear(input, hidden, device: device),
        BatchNorm1d(hidden, device: device),
        ReLU(),
        Linear(hidden, output, device: device),
        BatchNorm1d(output, affine: false, device: device));
}
