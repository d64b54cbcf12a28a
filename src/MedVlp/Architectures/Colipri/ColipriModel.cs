using MedVlp.Inference.Generation;
using MedVlp.Modeling;
using MedVlp.Modeling.Backbones;
using MedVlp.Modeling.Blocks;
using MedVlp.Text;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace MedVlp.Architectures.Colipri;

/// <summary>
/// COLIPRI (arXiv 2510.15042): a Primus 3D ViT (<c>backbone</c>), a Conv3d <c>projector</c> of its patch tokens to the
/// shared space, attention pooling (<c>pooler</c>, a learned query; or the tokens' maximum, <see cref="ColipriConfig.ImagePooling"/>) to one embedding, a BERT text encoder
/// (<c>text_encoder</c> + <c>text_projection</c>), a learnable <c>logit_scale</c> (and <c>logit_bias</c> for SigLIP), a
/// report decoder cross-attending to the patch tokens (<c>report_decoder</c>) and a masked-image-modelling head
/// (<c>mim_head</c>: each token to its patch's voxels). <see cref="EncodeImage"/> and <see cref="EncodeText"/> follow the
/// released API (<c>encode_image(x, pool, project, normalize)</c>).
/// </summary>
public sealed class ColipriModel : CompositeModel, IDualEncoder, INoWeightDecay, IReportGeneratingModel, IBertTextEncoderModel
{
#pragma warning disable IDE1006, SA1300 // State-dict names follow the released model where known.
    private readonly PrimusEncoder backbone;
    private readonly Conv3d projector;
    private readonly AttentionPool? pooler;
    private readonly BertModel text_encoder;
    private readonly Linear text_projection;
    private readonly Parameter logit_scale;
    private readonly Parameter logit_bias;
    private readonly ReportDecoder report_decoder;
    private readonly Linear mim_head;
#pragma warning restore IDE1006, SA1300
    private readonly ColipriConfig config;
    private readonly long[]? toReport;
    private readonly long[]? fromReport;
    private readonly HuWindow[]? windows;
    private readonly FrozenTextCache _textCache = new();

    /// <summary>Creates the model with freshly initialised weights.</summary>
    public ColipriModel(ColipriConfig config, Device? device = null)
        : base(nameof(ColipriModel))
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        this.config = config;
        var e = config.Encoder;
        if (config.ReportVocabulary is { } vocabulary)
        {
            fromReport = [.. vocabulary.Select(v => (long)v)];
            toReport = new long[config.Text.VocabSize];
            for (var i = 0; i < fromReport.Length; i++)
            {
                toReport[fromReport[i]] = i;
            }
        }

        windows = config.InputWindows is { Count: > 0 } w ? [.. w] : null;
        backbone = new PrimusEncoder(e with { InChannels = config.BackboneChannels }, device);
        projector = Conv3d(e.Width, config.EmbeddingDim, 1, device: device);
        pooler = config.ImagePooling == ImagePooling.Attention ? new AttentionPool(config.EmbeddingDim, config.PoolHeads, 1, device) : null;
        text_encoder = new BertModel(config.Text, device);
        text_projection = Linear(config.Text.HiddenSize, config.EmbeddingDim, hasBias: false, device: device);
        var sigLip = config.Contrastive == ColipriContrastive.SigLip;
        logit_scale = new Parameter(full([], sigLip ? Math.Log(10) : Math.Log(1 / config.InitialTemperature), device: device));
        logit_bias = new Parameter(full([], sigLip ? -10.0 : 0.0, device: device), requires_grad: sigLip);
        report_decoder = new ReportDecoder(config.ReportVocabularySize, config.DecoderWidth, config.DecoderHeads, config.DecoderLayers, config.MaxTextTokens, config.EmbeddingDim, device);
        mim_head = Linear(e.Width, (long)config.BackboneChannels * e.PatchSize * e.PatchSize * e.PatchSize, device: device);
        RegisterComponents();
        if (device is null || device.type != DeviceType.META)
        {
            using var noGrad = no_grad();
            init.normal_(text_projection.weight, 0, Math.Pow(config.Text.HiddenSize, -0.5));
            init.normal_(mim_head.weight, 0, 0.02);
            init.zeros_(mim_head.bias);
        }
    }

    /// <inheritdoc />
    public override ArchitectureConfig Config => config;

    /// <summary>The sizes and objective settings.</summary>
    public ColipriConfig Sizes => config;

    /// <inheritdoc />
    public int EmbeddingDim => config.EmbeddingDim;

    /// <inheritdoc />
    public IReadOnlyList<long> ImageInputShape => [config.Encoder.InChannels, config.Encoder.InputSize, config.Encoder.InputSize, config.Encoder.InputSize];

    /// <inheritdoc />
    public int MaxTextTokens => config.MaxTextTokens;

    /// <summary>The image backbone.</summary>
    public PrimusEncoder Backbone => backbone;

    /// <summary>The report decoder.</summary>
    public ReportDecoder Decoder => report_decoder;

    /// <summary>The component name of the text encoder (<c>text_encoder</c>), for <see cref="CompositeModel.Freeze"/>.</summary>
    public const string TextComponent = "text_encoder";

    /// <summary>The BERT text encoder (a pretrained one loads into it; frozen, it runs without gradients).</summary>
    public BertModel TextEncoder => text_encoder;

    string IBertTextEncoderModel.TextEncoderComponent => TextComponent;

    /// <summary>The learnable log inverse temperature (0-d); <see cref="LogitScale"/> is its exponentiated multiplier.</summary>
    public Parameter LogLogitScale => logit_scale;

    /// <summary>The SigLIP logit bias (0-d; fixed at 0 and untrained for CLIP).</summary>
    public Parameter LogitBias => logit_bias;

    /// <inheritdoc />
    public Tensor EncodeImages(Tensor images) => EncodeImage(images);

    /// <inheritdoc />
    public Tensor EncodeTexts(Tensor inputIds, Tensor attentionMask) => EncodeText(inputIds, attentionMask);

    /// <summary>The logit scale: exp(logit_scale), clamped to 100 (the multiplier of the similarities).</summary>
    public Tensor LogitScale()
    {
        using var scope = NewDisposeScope();
        return scope.MoveToOuter(logit_scale.exp().clamp_max(100));
    }

    /// <summary>Projected patch tokens (B x N x embedding) of preprocessed volumes, optionally with masked tokens.</summary>
    public Tensor EncodeImageTokens(Tensor volumes, Tensor? mask = null)
    {
        using var scope = NewDisposeScope();
        var input = WithWindows(volumes);
        var grid = backbone.Grid(input);
        var tokens = backbone.forward(input, mask);
        return scope.MoveToOuter(ProjectTokens(tokens, grid));
    }

    /// <summary>
    /// The released <c>encode_image</c>: with <paramref name="pool"/>, one embedding per volume (B x embedding);
    /// otherwise the patch-token map, projected (B x embedding x D' x H' x W') or the backbone's (B x width x ...).
    /// </summary>
    public Tensor EncodeImage(Tensor volumes, bool pool = true, bool project = true, bool normalize = true)
    {
        ArgumentNullException.ThrowIfNull(volumes);
        using var scope = NewDisposeScope();
        var input = WithWindows(volumes);
        var grid = backbone.Grid(input);
        var tokens = backbone.forward(input, null);
        if (!project && !pool)
        {
            return scope.MoveToOuter(ToMap(tokens, grid));
        }

        var projected = ProjectTokens(tokens, grid);
        if (!pool)
        {
            var map = ToMap(projected, grid);
            return scope.MoveToOuter(normalize ? F.normalize(map, dim: 1) : map);
        }

        return scope.MoveToOuter(Pool(projected, normalize));
    }

    /// <summary>Pools projected patch tokens (B x N x embedding) into one embedding per volume (<see cref="ColipriConfig.ImagePooling"/>).</summary>
    public Tensor Pool(Tensor projectedTokens, bool normalize = true)
    {
        ArgumentNullException.ThrowIfNull(projectedTokens);
        using var scope = NewDisposeScope();
        var pooled = pooler is null ? projectedTokens.amax([1]) : pooler.forward(projectedTokens).squeeze(1);
        return scope.MoveToOuter(normalize ? F.normalize(pooled, dim: -1) : pooled);
    }

    /// <summary>
    /// Sliding-window encoding of one volume (1 x C x D x H x W) larger than the training crop: overlapping crop-sized
    /// windows (stride = crop - overlap, the last window flush with the far side) are encoded, their projected token
    /// maps averaged where they overlap into one token grid of the whole volume, which is then pooled. Sides must be
    /// multiples of the patch and at least the crop.
    /// </summary>
    /// <param name="volume">The volume.</param>
    /// <param name="overlapVoxels">Overlap between neighbouring windows (a multiple of the patch, less than the crop).</param>
    /// <param name="normalize">L2-normalise the embedding.</param>
    public Tensor EncodeImageSlidingWindow(Tensor volume, int overlapVoxels, bool normalize = true)
    {
        ArgumentNullException.ThrowIfNull(volume);
        var p = config.Encoder.PatchSize;
        var crop = config.Encoder.InputSize;
        var grid = backbone.Grid(WithWindows(volume));
        if (volume.shape[0] != 1 || overlapVoxels < 0 || overlapVoxels % p != 0 || overlapVoxels >= crop || volume.shape.Skip(2).Any(s => s < crop))
        {
            throw new ArgumentException(
                $"Sliding windows need one volume with every side >= the {crop}-voxel crop, and an overlap that is a multiple of {p} below {crop}; got [{string.Join(", ", volume.shape)}], overlap {overlapVoxels}.");
        }

        using var scope = NewDisposeScope();
        var e = config.EmbeddingDim;
        var sum = zeros([1, e, grid[0], grid[1], grid[2]], volume.dtype, volume.device);
        var count = zeros([1, 1, grid[0], grid[1], grid[2]], volume.dtype, volume.device);
        var starts = Enumerable.Range(0, 3).Select(a => WindowStarts(volume.shape[a + 2], crop, crop - overlapVoxels)).ToArray();
        var g = crop / p;
        foreach (var z in starts[0])
        {
            foreach (var y in starts[1])
            {
                foreach (var x in starts[2])
                {
                    using var inner = NewDisposeScope();
                    var window = volume.narrow(2, z, crop).narrow(3, y, crop).narrow(4, x, crop);
                    var map = ToMap(EncodeImageTokens(window), [g, g, g]);
                    sum.narrow(2, z / p, g).narrow(3, y / p, g).narrow(4, x / p, g).add_(map);
                    count.narrow(2, z / p, g).narrow(3, y / p, g).narrow(4, x / p, g).add_(1);
                }
            }
        }

        var tokens = (sum / count).flatten(2).transpose(1, 2);
        return scope.MoveToOuter(Pool(tokens, normalize));
    }

    /// <summary>The released <c>encode_text</c>: pooled (<see cref="ColipriConfig.TextPooling"/>: [CLS] or the mean of the real tokens)
    /// projected embeddings (B x embedding), or the encoder's token states. A frozen text encoder runs under
    /// <c>no_grad</c> (nothing before it trains; the projection after it does), its pooled states cached per token
    /// sequence when <see cref="CacheFrozenTextOutputs"/>.</summary>
    public Tensor EncodeText(Tensor inputIds, Tensor attentionMask, bool pool = true, bool normalize = true)
    {
        ArgumentNullException.ThrowIfNull(inputIds);
        ArgumentNullException.ThrowIfNull(attentionMask);
        using var scope = NewDisposeScope();
        Tensor Run(Tensor ids, Tensor mask) => pool ? PoolText(text_encoder.forward(ids, mask), mask) : text_encoder.forward(ids, mask);
        Tensor states;
        if (!IsFrozen(TextComponent))
        {
            states = Run(inputIds, attentionMask);
        }
        else
        {
            using var noGrad = no_grad();
            states = pool && CacheFrozenTextOutputs ? _textCache.Get(WeightsFingerprint(TextComponent), inputIds, attentionMask, Run) : Run(inputIds, attentionMask);
        }

        if (!pool)
        {
            return scope.MoveToOuter(states);
        }

        var projected = text_projection.forward(states);
        return scope.MoveToOuter(normalize ? F.normalize(projected, dim: -1) : projected);
    }

    /// <summary>Cache the pooled states of a frozen <c>text_encoder</c> per token sequence (keyed by its weights'
    /// fingerprint and the ids), as M-FLAG does. Off by default; the recipes turn it on with a pretrained text model.</summary>
    public bool CacheFrozenTextOutputs { get; set; }

    /// <summary>The number of token sequences in the frozen-text cache.</summary>
    public int CachedTextOutputs => _textCache.Count;

    /// <summary>
    /// Report logits (B x T x V) for teacher forcing, given projected image tokens (B x N x embedding) and tokenizer ids;
    /// V and the logits' columns are those of <see cref="ToReportVocabulary"/> (the tokenizer's ids without a
    /// <see cref="ColipriConfig.ReportVocabulary"/>).
    /// </summary>
    public Tensor ReportLogits(Tensor imageTokens, Tensor inputIds, Tensor attentionMask)
    {
        ArgumentNullException.ThrowIfNull(inputIds);
        using var scope = NewDisposeScope();
        return scope.MoveToOuter(report_decoder.forward(ToReportVocabulary(inputIds), attentionMask, imageTokens));
    }

    /// <summary>Maps tokenizer ids to the report decoder's rows (identity without a <see cref="ColipriConfig.ReportVocabulary"/>;
    /// ids outside it map to its first entry).</summary>
    public Tensor ToReportVocabulary(Tensor inputIds)
    {
        ArgumentNullException.ThrowIfNull(inputIds);
        if (toReport is null)
        {
            return inputIds.alias();
        }

        using var scope = NewDisposeScope();
        var table = tensor(toReport, device: inputIds.device);
        return scope.MoveToOuter(table.index_select(0, inputIds.flatten().clamp(0, toReport.Length - 1)).reshape(inputIds.shape));
    }

    /// <summary>
    /// Masked image modelling: masks a random <see cref="ColipriConfig.MaskRatio"/> of each volume's patch tokens
    /// (replaced by the mask token), encodes, and predicts every token's patch voxels.
    /// </summary>
    /// <returns>Predicted and true voxels per patch (B x N x p^3 C) and the mask (B x N, true = masked).</returns>
    public (Tensor Prediction, Tensor Target, Tensor Mask) MaskedImageModeling(Tensor volumes, Generator? generator = null)
    {
        ArgumentNullException.ThrowIfNull(volumes);
        using var scope = NewDisposeScope();
        var input = WithWindows(volumes);
        var grid = backbone.Grid(input);
        var b = volumes.shape[0];
        var n = grid[0] * grid[1] * grid[2];
        var masked = Math.Max(1, (long)Math.Round(config.MaskRatio * n));
        var noise = rand([b, n], generator: generator, device: volumes.device);
        var rank = noise.argsort(1).argsort(1);
        var mask = rank.lt(masked);
        var tokens = backbone.forward(input, mask);
        var prediction = mim_head.forward(tokens);
        var target = Patchify(input);
        return (scope.MoveToOuter(prediction), scope.MoveToOuter(target), scope.MoveToOuter(mask));
    }

    /// <summary>
    /// The backbone's input: the volumes (B x 1 x D x H x W, the <c>colipri</c> preset's HU / 1000 scale) followed by one
    /// channel per <see cref="ColipriConfig.InputWindows"/> entry (HU window mapped to [-1, 1], clamped); the volumes
    /// themselves without windows.
    /// </summary>
    public Tensor WithWindows(Tensor volumes)
    {
        ArgumentNullException.ThrowIfNull(volumes);
        if (windows is null)
        {
            return volumes.alias();
        }

        using var scope = NewDisposeScope();
        var channels = new List<Tensor> { volumes };
        foreach (var w in windows)
        {
            // HU = 1000 x; window: 2 (HU - min) / (max - min) - 1.
            var scale = 2000.0 / (w.MaxHu - w.MinHu);
            var offset = (-2.0 * w.MinHu / (w.MaxHu - w.MinHu)) - 1;
            channels.Add((volumes * scale + offset).clamp(-1, 1));
        }

        return scope.MoveToOuter(cat(channels, 1));
    }

    /// <summary>Cuts backbone inputs (B x C x D x H x W, after <see cref="WithWindows"/>) into patch voxels (B x N x p^3 C) in token order.</summary>
    public Tensor Patchify(Tensor volumes)
    {
        using var scope = NewDisposeScope();
        var p = config.Encoder.PatchSize;
        var grid = backbone.Grid(volumes);
        var (b, c) = (volumes.shape[0], volumes.shape[1]);
        var x = volumes.reshape(b, c, grid[0], p, grid[1], p, grid[2], p).permute(0, 2, 4, 6, 3, 5, 7, 1);
        return scope.MoveToOuter(x.reshape(b, grid[0] * grid[1] * grid[2], (long)p * p * p * c));
    }

    /// <summary>Greedy report generation for one volume's projected tokens (1 x N x embedding), from a start token, with
    /// the decoder's key/value cache (through the shared <see cref="TextGenerator"/>).</summary>
    /// <returns>The generated ids after the start token, without the end token.</returns>
    public long[] GenerateReport(Tensor imageTokens, long startToken, long endToken, int maxNewTokens, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(imageTokens);
        using var head = new ReportDecoderHead(report_decoder, imageTokens, startToken, endToken, fromReport, toReport);
        var result = new TextGenerator().Generate(head, new GenerationOptions { MaxNewTokens = maxNewTokens }, cancellationToken);
        return [.. result.TokenIds.Select(i => (long)i)];
    }

    /// <inheritdoc/>
    /// <remarks>The report starts after the tokenizer's start token ([CLS]) and ends at its end token ([SEP]), as the
    /// decoder is trained.</remarks>
    public ILanguageHead StartReport(Tensor volume, TextTokenizer reportTokenizer)
    {
        ArgumentNullException.ThrowIfNull(volume);
        ArgumentNullException.ThrowIfNull(reportTokenizer);
        var start = reportTokenizer.BeginningOfSequenceTokenId
            ?? throw new ArgumentException($"The {reportTokenizer.Kind} tokenizer has no start token to begin a report with.", nameof(reportTokenizer));
        if (volume.Dimensions != 5 || volume.shape[0] != 1)
        {
            throw new ArgumentException($"StartReport takes one preprocessed volume (1 x C x D x H x W), got [{string.Join(", ", volume.shape)}].", nameof(volume));
        }

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        return new ReportDecoderHead(report_decoder, EncodeImageTokens(volume), start, reportTokenizer.EndOfSequenceTokenId, fromReport, toReport);
    }

    /// <inheritdoc/>
    public IEnumerable<string> NoWeightDecayParameterNames() => NoWeightDecay.Compose(this, "logit_scale", "logit_bias");

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _textCache.Clear();
        }

        base.Dispose(disposing);
    }

    /// <summary>One state per text (<see cref="ColipriConfig.TextPooling"/>): [CLS] or the mean over the real tokens.</summary>
    private Tensor PoolText(Tensor hidden, Tensor attentionMask)
    {
        if (config.TextPooling != TextPooling.Mean)
        {
            return hidden.select(1, 0);
        }

        using var scope = NewDisposeScope();
        var weights = attentionMask.to(hidden.dtype).unsqueeze(-1);
        return scope.MoveToOuter((hidden * weights).sum(1) / weights.sum(1).clamp_min(1));
    }

    private Tensor ProjectTokens(Tensor tokens, long[] grid)
    {
        using var scope = NewDisposeScope();
        var map = projector.forward(ToMap(tokens, grid));
        return scope.MoveToOuter(map.flatten(2).transpose(1, 2));
    }

    private static Tensor ToMap(Tensor tokens, long[] grid) => tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], grid[0], grid[1], grid[2]);

    private static IEnumerable<long> WindowStarts(long size, long window, long stride)
    {
        var starts = new List<long>();
        for (long s = 0; ; s += stride)
        {
            if (s + window >= size)
            {
                starts.Add(size - window);
                break;
            }

            starts.Add(s);
        }

        return starts.Distinct();
    }
}
