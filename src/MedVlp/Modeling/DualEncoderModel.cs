using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace MedVlp.Modeling;

/// <summary>Sizes of the parts a <see cref="DualEncoderModel"/> adds around its two backbones.</summary>
public sealed record DualEncoderOptions
{
    /// <summary>Width of the shared embedding space.</summary>
    public int EmbeddingDim { get; init; } = 64;

    /// <summary>Longest tokenized text, special tokens included.</summary>
    public int MaxTextTokens { get; init; } = 128;

    /// <summary>Initial softmax temperature (CLIP: 0.07).</summary>
    public double InitialTemperature { get; init; } = 0.07;

    /// <summary>Upper bound of the logit scale (CLIP: 100).</summary>
    public double MaxLogitScale { get; init; } = 100;
}

/// <summary>
/// A CLIP-style dual encoder laid out as Hugging Face's <c>CLIPModel</c>: <c>vision_model</c> (an image backbone),
/// <c>text_model</c> (a text backbone), <c>visual_projection</c>, <c>text_projection</c> (no bias) and the learnable
/// <c>logit_scale</c> parameter (the log of the logit scale). The registered <c>clip3d</c> architecture is this model over
/// a <see cref="VolumeTransformer"/> and a <see cref="BertModel"/>; compose other backbones with the second constructor.
/// </summary>
/// <remarks>When <c>text_model</c> is frozen its outputs are computed under <c>no_grad</c> (nothing upstream of token ids
/// trains) and, with <see cref="CacheFrozenTextOutputs"/>, cached per token sequence and weights fingerprint.</remarks>
public sealed class DualEncoderModel : CompositeModel, IDualEncoder
{
    /// <summary>The component names.</summary>
    public const string VisionComponent = "vision_model", TextComponent = "text_model";

#pragma warning disable IDE1006, SA1300 // State-dict names follow Hugging Face CLIPModel.
    private readonly nn.Module vision_model;
    private readonly nn.Module text_model;
    private readonly Linear visual_projection;
    private readonly Linear text_projection;
    private readonly Parameter logit_scale;
#pragma warning restore IDE1006, SA1300
    private readonly IImageBackbone _image;
    private readonly ITextBackbone _text;
    private readonly DualEncoderOptions _options;
    private readonly FrozenTextCache _textCache = new();

    /// <summary>Creates the <c>clip3d</c> model with freshly initialised weights on <paramref name="device"/>
    /// (<c>meta</c>: the structure without memory).</summary>
    public DualEncoderModel(Clip3dConfig config, Device? device = null)
        : this(Validated(config), BackboneAdapters.From(new VolumeTransformer(config.Volume, device)), BackboneAdapters.From(new BertModel(config.Text, device), config.TextPooling),
            new DualEncoderOptions { EmbeddingDim = config.EmbeddingDim, MaxTextTokens = config.MaxTextTokens, InitialTemperature = config.InitialTemperature, MaxLogitScale = config.MaxLogitScale },
            device)
    {
    }

    /// <summary>Composes a dual encoder from two backbones (which become the <c>vision_model</c> and <c>text_model</c>
    /// components) and freshly initialised projections.</summary>
    /// <param name="config">The architecture's configuration, as registered (<see cref="ModelRegistry.Register"/>).</param>
    /// <param name="image">The image backbone.</param>
    /// <param name="text">The text backbone.</param>
    /// <param name="options">Embedding width and logit scale.</param>
    /// <param name="device">Where the new parameters live.</param>
    public DualEncoderModel(ArchitectureConfig config, IImageBackbone image, ITextBackbone text, DualEncoderOptions options, Device? device = null)
        : base(nameof(DualEncoderModel))
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(options);
        if (options.EmbeddingDim <= 0 || options.MaxTextTokens < 2 || options.MaxTextTokens > text.MaxTokens || !(options.InitialTemperature > 0) || !(options.MaxLogitScale > 0))
        {
            throw new ArgumentException($"Invalid dual encoder options {options} (max text tokens at most the text backbone's {text.MaxTokens}).", nameof(options));
        }

        Config = config;
        _image = image;
        _text = text;
        _options = options;
        vision_model = image.TorchModule;
        text_model = text.TorchModule;
        visual_projection = Linear(image.Width, options.EmbeddingDim, hasBias: false, device: device);
        text_projection = Linear(text.Width, options.EmbeddingDim, hasBias: false, device: device);
        logit_scale = new Parameter(full([], Math.Log(1 / options.InitialTemperature), device: device));
        RegisterComponents();
        if (device is null || device.type != DeviceType.META)
        {
            using var noGrad = no_grad();
            init.normal_(visual_projection.weight, 0, Math.Pow(image.Width, -0.5));
            init.normal_(text_projection.weight, 0, Math.Pow(text.Width, -0.5));
        }
    }

    /// <inheritdoc />
    public override ArchitectureConfig Config { get; }

    /// <summary>The image backbone.</summary>
    public IImageBackbone ImageBackbone => _image;

    /// <summary>The text backbone.</summary>
    public ITextBackbone TextBackbone => _text;

    /// <inheritdoc />
    public int EmbeddingDim => _options.EmbeddingDim;

    /// <inheritdoc />
    public IReadOnlyList<long> ImageInputShape => _image.InputShape;

    /// <inheritdoc />
    public int MaxTextTokens => _options.MaxTextTokens;

    /// <summary>The learnable log of the logit scale (0-d; state-dict key <c>logit_scale</c>, as in open_clip).</summary>
    public Parameter LogLogitScale => logit_scale;

    /// <summary>Cache the pooled outputs of a frozen <c>text_model</c> per token sequence (keyed by the weights'
    /// fingerprint and the ids, which carry the tokenization). Off by default.</summary>
    public bool CacheFrozenTextOutputs { get; set; }

    /// <summary>The number of token sequences in the frozen-text cache.</summary>
    public int CachedTextOutputs => _textCache.Count;

    /// <inheritdoc />
    public Tensor LogitScale()
    {
        using var scope = NewDisposeScope();
        return scope.MoveToOuter(logit_scale.exp().clamp_max(_options.MaxLogitScale));
    }

    /// <inheritdoc />
    public Tensor EncodeImages(Tensor images)
    {
        using var scope = NewDisposeScope();
        var features = visual_projection.forward(_image.EncodePooled(images));
        return scope.MoveToOuter(F.normalize(features, dim: -1));
    }

    /// <inheritdoc />
    public Tensor EncodeTexts(Tensor inputIds, Tensor attentionMask)
    {
        using var scope = NewDisposeScope();
        Tensor pooled;
        if (IsFrozen(TextComponent))
        {
            // Nothing upstream of token ids trains: no graph is needed through the frozen encoder.
            using var noGrad = no_grad();
            pooled = CacheFrozenTextOutputs ? CachedTextPooled(inputIds, attentionMask) : _text.EncodePooled(inputIds, attentionMask);
        }
        else
        {
            pooled = _text.EncodePooled(inputIds, attentionMask);
        }

        return scope.MoveToOuter(F.normalize(text_projection.forward(pooled), dim: -1));
    }

    /// <summary>Empties the frozen-text cache.</summary>
    public void ClearTextCache() => _textCache.Clear();

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            ClearTextCache();
        }

        base.Dispose(disposing);
    }

    private static Clip3dConfig Validated(Clip3dConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        return config;
    }

    private Tensor CachedTextPooled(Tensor inputIds, Tensor attentionMask) =>
        _textCache.Get(WeightsFingerprint(TextComponent), inputIds, attentionMask, _text.EncodePooled);
}
