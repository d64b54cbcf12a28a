using MedVlp.Losses;
using MedVlp.Modeling;
using MedVlp.Modeling.Backbones;
using MedVlp.Modeling.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace MedVlp.Architectures.Prior;

/// <summary>What PRIOR's encoders make of a batch (the input of <see cref="PriorModel.ComputeLosses"/>).</summary>
/// <param name="Images">The input images (B x C x H x W) or volumes (B x C x D x H x W), the reconstruction target.</param>
/// <param name="LocalImage">Local image tokens (B x N x D): the <c>layer4</c> map reshaped without a permute, projected.</param>
/// <param name="GlobalImage">The attention-pooled image feature, projected (B x D).</param>
/// <param name="Sentences">Sentence vectors (B x S x D): projected token states averaged per sentence, zero rows for padding.</param>
/// <param name="SentenceMask">Which sentences are real (B x S, bool); every report has at least one.</param>
public sealed record PriorEncoding(Tensor Images, Tensor LocalImage, Tensor GlobalImage, Tensor Sentences, Tensor SentenceMask) : IDisposable
{
    /// <inheritdoc />
    public void Dispose()
    {
        Images.Dispose();
        LocalImage.Dispose();
        GlobalImage.Dispose();
        Sentences.Dispose();
        SentenceMask.Dispose();
    }
}

/// <summary>
/// The weights of PRIOR's loss terms, which also select the stage's computation as the released <c>stage1_step</c>,
/// <c>stage2_step</c> and <c>stage3_step</c> do: a positive <see cref="Prototype"/> weight puts the sentence prototype
/// bank in the path (stage 2 and 3: the alignments use the prototypes); a positive weight on any reconstruction term
/// (<see cref="ImageReconstruction"/>, <see cref="SentenceGeneration"/>, <see cref="Kl"/>, <see cref="GlobalPrediction"/>)
/// runs the cross-modality reconstruction of stage 3 (reports truncated to the decoder's queries).
/// </summary>
public sealed record PriorLossWeights
{
    /// <summary>The loss part names, as stages and logs name them.</summary>
    public const string GlobalName = "global", LocalImageName = "local_image", LocalTextName = "local_text", PrototypeName = "proto",
        ImageReconstructionName = "rec_image", SentenceGenerationName = "spg", KlName = "kl", GlobalPredictionName = "gpa";

    /// <summary>Every part name, in the order of <see cref="PriorModel.ComputeLosses"/>' terms.</summary>
    public static IReadOnlyList<string> Names { get; } =
        [GlobalName, LocalImageName, LocalTextName, PrototypeName, ImageReconstructionName, SentenceGenerationName, KlName, GlobalPredictionName];

    /// <summary>Stage 1 (released: 20 epochs): global + local alignment, no prototypes.</summary>
    public static PriorLossWeights Stage1 { get; } = new();

    /// <summary>Stage 2 (released: 30 epochs): stage 1 on the sentence prototypes + 10 x the prototype loss.</summary>
    public static PriorLossWeights Stage2 { get; } = new() { Prototype = 10 };

    /// <summary>Stage 3 (released: 100 epochs): 10 x global + local + image reconstruction + 10 x sentence prototype
    /// generation (L1) + KL + global prediction alignment + 10 x prototype.</summary>
    public static PriorLossWeights Stage3 { get; } = new()
    {
        Global = 10, Prototype = 10, ImageReconstruction = 1, SentenceGeneration = 10, Kl = 1, GlobalPrediction = 1,
    };

    /// <summary>Global image-report InfoNCE.</summary>
    public double Global { get; init; } = 1;

    /// <summary>Image-side local alignment (SimSiam).</summary>
    public double LocalImage { get; init; } = 1;

    /// <summary>Text-side local alignment (InfoNCE among a report's sentences).</summary>
    public double LocalText { get; init; } = 1;

    /// <summary>The prototype bank's L1 reconstruction of the sentences (released lambda_proto = 10).</summary>
    public double Prototype { get; init; }

    /// <summary>Image reconstruction (L1).</summary>
    public double ImageReconstruction { get; init; }

    /// <summary>Sentence prototype generation: L1 of the Hungarian-matched decoder outputs (released: x lambda_proto = 10).</summary>
    public double SentenceGeneration { get; init; }

    /// <summary>KL between the sentences' prototype distributions and the generated ones.</summary>
    public double Kl { get; init; }

    /// <summary>Global prediction alignment: InfoNCE between the pooled generated report and the report.</summary>
    public double GlobalPrediction { get; init; }

    /// <summary>The weight of part <paramref name="name"/>.</summary>
    public double this[string name] => name switch
    {
        GlobalName => Global,
        LocalImageName => LocalImage,
        LocalTextName => LocalText,
        PrototypeName => Prototype,
        ImageReconstructionName => ImageReconstruction,
        SentenceGenerationName => SentenceGeneration,
        KlName => Kl,
        GlobalPredictionName => GlobalPrediction,
        _ => throw new KeyNotFoundException($"PRIOR has no loss part \"{name}\"; parts: {string.Join(", ", Names)}."),
    };

    /// <summary>These weights with part <paramref name="name"/> set to <paramref name="weight"/>.</summary>
    public PriorLossWeights With(string name, double weight) => name switch
    {
        GlobalName => this with { Global = weight },
        LocalImageName => this with { LocalImage = weight },
        LocalTextName => this with { LocalText = weight },
        PrototypeName => this with { Prototype = weight },
        ImageReconstructionName => this with { ImageReconstruction = weight },
        SentenceGenerationName => this with { SentenceGeneration = weight },
        KlName => this with { Kl = weight },
        GlobalPredictionName => this with { GlobalPrediction = weight },
        _ => throw new KeyNotFoundException($"PRIOR has no loss part \"{name}\"; parts: {string.Join(", ", Names)}."),
    };

    /// <summary>Whether the prototype bank is in the path (stages 2 and 3).</summary>
    public bool UsesPrototypes => Prototype > 0 || Reconstructs;

    /// <summary>Whether the cross-modality reconstruction runs (stage 3).</summary>
    public bool Reconstructs => ImageReconstruction > 0 || SentenceGeneration > 0 || Kl > 0 || GlobalPrediction > 0;
}

/// <summary>
/// PRIOR (Cheng et al., "PRIOR: Prototype Representation Joint Learning from Medical Images and Reports", ICCV 2023) in
/// the layout of the released <c>Prior</c> module: <c>image_encoder</c> (<c>encoder</c> = torchvision-named ResNet-50,
/// <c>atten_pool</c> = CLIP attention pooling), <c>text_encoder.encoder</c> (BERT), <c>global_text_attention</c>, the four
/// projections, <c>predictor</c>, <c>sentence_decoder</c>, <c>prototype_queries</c>, <c>image_decoder</c>,
/// <c>local_cross_attention</c>, <c>logit_scale</c>, <c>local_logit_scale</c> and <c>sentence_bank</c> (its codebook is
/// <c>sentence_bank.prototypes</c> here, <c>sentence_bank.embed.weight</c> in the released checkpoints: see
/// <see cref="ReleasedName"/>). The released code loops over the reports of a batch; here the batch runs at once with
/// sentence masks, which gives the same values.
/// As an <see cref="IZeroShotScoringModel"/> it embeds images (the normalised global image embedding) and texts (the
/// normalised sentence-pooled report through the prototype bank) into one space, and classifies zero-shot by the released
/// rule (<see cref="ZeroShotScores(Tensor, IReadOnlyList{Tensor})"/>). Inference (eval mode) uses the bank without its Gumbel
/// noise, so embeddings and predictions are deterministic.
/// </summary>
public sealed class PriorModel : CompositeModel, IZeroShotScoringModel
{
#pragma warning disable IDE1006, SA1300 // State-dict names follow the released code.
    private readonly PriorImageEncoder image_encoder;
    private readonly PriorTextEncoder text_encoder;
    private readonly ClipAttentionPool global_text_attention;
    private readonly Linear global_image_projection;
    private readonly Linear local_image_projection;
    private readonly Linear global_text_projection;
    private readonly Linear local_text_projection;
    private readonly Sequential predictor;
    private readonly PriorSentenceDecoder sentence_decoder;
    private readonly Parameter prototype_queries;
    private readonly PriorImageDecoder image_decoder;
    private readonly LocalAlignmentModule local_cross_attention;
    private readonly Parameter logit_scale;
    private readonly Parameter local_logit_scale;
    private readonly SentencePrototypeBank sentence_bank;
#pragma warning restore IDE1006, SA1300
    private readonly PriorConfig _config;

    /// <summary>Builds the model with fresh weights (torchvision's ResNet initialisation, BERT's, the released projections').</summary>
    /// <param name="config">Sizes.</param>
    /// <param name="device">Where the parameters live (<c>meta</c>: the structure without memory).</param>
    public PriorModel(PriorConfig config, Device? device = null)
        : base(nameof(PriorModel))
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        _config = config;
        var d = config.EmbeddingDim;
        var vision = config.Image.FeatureWidth;
        var text = config.Text.HiddenSize;
        image_encoder = new PriorImageEncoder(config, device);
        text_encoder = new PriorTextEncoder(config.Text, device);
        global_text_attention = new ClipAttentionPool(d, config.SentencePoolHeads, null, device: device);
        global_image_projection = Linear(vision, d, device: device);
        local_image_projection = Linear(vision, d, device: device);
        global_text_projection = Linear(text, d, device: device);
        local_text_projection = Linear(text, d, device: device);
        predictor = Sequential(Linear(d, d / 2, device: device), ReLU(), Linear(d / 2, d, device: device));
        sentence_decoder = new PriorSentenceDecoder(config.Decoder, device);
        prototype_queries = new Parameter(empty([1, config.Queries, d], device: device));
        image_decoder = new PriorImageDecoder(d * 2, config.Image.SpatialDims, config.ImageReconstructionDropout, device: device);
        local_cross_attention = new LocalAlignmentModule(d);
        logit_scale = new Parameter(full([], Math.Log(1 / config.Temperature), device: device));
        local_logit_scale = new Parameter(full([], Math.Log(1 / config.LocalTemperature), device: device));
        sentence_bank = new SentencePrototypeBank(new SentencePrototypeBankOptions { Prototypes = config.Prototypes, Dimension = d, Temperature = config.PrototypeTemperature });
        if (device is not null && device.type != DeviceType.CPU)
        {
            local_cross_attention.to(device);
            sentence_bank.to(device);
        }

        RegisterComponents();
        if (device is null || device.type != DeviceType.META)
        {
            using var noGrad = no_grad();
            init.normal_(prototype_queries);
            init.normal_(global_image_projection.weight, 0, Math.Pow(vision, -0.5));
            init.normal_(global_text_projection.weight, 0, Math.Pow(text, -0.5));
            init.normal_(local_image_projection.weight, 0, Math.Pow(vision, -0.5));
            init.normal_(local_text_projection.weight, 0, Math.Pow(text, -0.5));
            init.normal_(((Linear)predictor[0]).weight, 0, Math.Pow(d, -0.5));
        }
    }

    /// <inheritdoc />
    public override ArchitectureConfig Config => _config;

    /// <summary>The sizes.</summary>
    public PriorConfig Sizes => _config;

    /// <summary>The ResNet of the image encoder.</summary>
    public ResNet ImageBackbone => image_encoder.Backbone;

    /// <summary>The BERT of the text encoder.</summary>
    public BertModel TextEncoder => text_encoder.Bert;

    /// <summary>The sentence prototype bank (switch <see cref="SentencePrototypeBankOptions.Noise"/> to
    /// <see cref="PrototypeNoise.None"/> for deterministic inference; the released code keeps the Gumbel noise).</summary>
    public SentencePrototypeBank PrototypeBank => sentence_bank;

    /// <summary>The local alignment module.</summary>
    public LocalAlignmentModule LocalAlignment => local_cross_attention;

    /// <summary>The SimSiam predictor (D -> D/2 -> D).</summary>
    public Sequential Predictor => predictor;

    /// <summary>The global logit scale s = exp(<c>logit_scale</c>) of the training losses.</summary>
    public Tensor LogitScale() => logit_scale.exp();

    /// <inheritdoc />
    public int EmbeddingDim => _config.EmbeddingDim;

    /// <inheritdoc />
    public IReadOnlyList<long> ImageInputShape =>
        [_config.Image.InChannels, .. Enumerable.Repeat((long)_config.ImageSize, _config.Image.SpatialDims)];

    /// <inheritdoc />
    public int MaxTextTokens => _config.MaxTextTokens;

    /// <summary>The L2-normalised global image embedding (attention pooling, <c>global_image_projection</c>).</summary>
    public Tensor EncodeImages(Tensor images)
    {
        using var scope = NewDisposeScope();
        var (_, global) = EncodeImage(images);
        return scope.MoveToOuter(F.normalize(global, dim: -1));
    }

    /// <summary>
    /// The L2-normalised global report embedding, as training makes it: the text (its tokens between the first and the
    /// last real one, [CLS] and [SEP]) is split into sentences after each of <see cref="PriorConfig.SentenceEndTokenIds"/>,
    /// the sentences go through the prototype bank (noise-free outside training) and the sentence attention pooling.
    /// </summary>
    /// <param name="inputIds">(B x T) token ids, each row [CLS] ... [SEP] then padding.</param>
    /// <param name="attentionMask">(B x T), 1 = token.</param>
    public Tensor EncodeTexts(Tensor inputIds, Tensor attentionMask)
    {
        ArgumentNullException.ThrowIfNull(inputIds);
        ArgumentNullException.ThrowIfNull(attentionMask);
        using var scope = NewDisposeScope();
        var index = InnerSentenceIndex(inputIds, attentionMask, _config.SentenceEndTokenIds);
        var (sentences, mask) = EncodeSentences(inputIds, attentionMask, index);
        var prototypes = Prototypes(sentences) * mask.to(sentences.dtype).unsqueeze(2);
        return scope.MoveToOuter(F.normalize(GlobalText(prototypes, mask), dim: -1));
    }

    /// <summary>
    /// Encodes one class's prompts for <see cref="ZeroShotScores(Tensor, IReadOnlyList{Tensor})"/>, as the released
    /// <c>on_test_start</c>: the token states 1 .. T-2 with mask 1 (prompts padded to one length T, so a shorter prompt
    /// keeps its [SEP]) projected and averaged into one sentence, then through the prototype bank.
    /// </summary>
    /// <param name="promptIds">The class's prompts (P x T ids).</param>
    /// <param name="promptMask">Their mask (P x T).</param>
    /// <returns>The prompts' prototype sentences (P x D).</returns>
    public Tensor EncodePrompts(Tensor promptIds, Tensor promptMask)
    {
        ArgumentNullException.ThrowIfNull(promptIds);
        ArgumentNullException.ThrowIfNull(promptMask);
        if (promptIds.dim() != 2 || promptIds.shape[1] < 3 || !promptIds.shape.SequenceEqual(promptMask.shape))
        {
            throw new ArgumentException($"Prompts: expected ids and mask of one shape [P, T] with T >= 3, got [{string.Join(", ", promptIds.shape)}] and [{string.Join(", ", promptMask.shape)}].", nameof(promptIds));
        }

        using var scope = NewDisposeScope();
        var t = promptIds.shape[1];
        var columns = arange(t, dtype: ScalarType.Int64, device: promptIds.device);
        var index = promptMask.ne(0).logical_and(columns.ge(1).logical_and(columns.le(t - 2)).unsqueeze(0)).to(ScalarType.Int64);
        var (sentence, _) = EncodeSentences(promptIds, promptMask, index, 1); // (P, 1, D)
        return scope.MoveToOuter(Prototypes(sentence).squeeze(1));
    }

    /// <summary>
    /// The released zero-shot rule over classes with one or more prompts each (<c>shared_step</c>): per class, the largest
    /// global logit over its prompts (raw <c>logit_scale</c> x cosine, as released) and the mean local score (the mean of
    /// both sigmoid attention maps between the image tokens and the prompt); the result is softmax(global) + 0.5 x softmax(local).
    /// </summary>
    /// <param name="images">Preprocessed images or volumes (B x <see cref="ImageInputShape"/>).</param>
    /// <param name="classPrompts">Per class, its prompts from <see cref="EncodePrompts"/> (P_k x D).</param>
    /// <returns>Scores (B x K), each row summing to 1.5; the predicted class is the arg max.</returns>
    public Tensor ZeroShotScores(Tensor images, IReadOnlyList<Tensor> classPrompts)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(classPrompts);
        if (classPrompts.Count < 2 || classPrompts.Any(p => p is null || p.dim() != 2 || p.shape[0] < 1 || p.shape[1] != _config.EmbeddingDim))
        {
            throw new ArgumentException($"Expected at least two classes, each with prompts of shape [P, {_config.EmbeddingDim}] from EncodePrompts.", nameof(classPrompts));
        }

        using var scope = NewDisposeScope();
        var (local, global) = EncodeImage(images);
        var prompts = cat([.. classPrompts], 0); // (P, D)
        var (globalLogits, localScores) = PromptScores(local, global, prompts.unsqueeze(1));
        var globalPerClass = new List<Tensor>();
        var localPerClass = new List<Tensor>();
        var start = 0L;
        foreach (var p in classPrompts)
        {
            var n = p.shape[0];
            globalPerClass.Add(globalLogits.narrow(1, start, n).amax([1], keepdim: true));
            localPerClass.Add(localScores.narrow(1, start, n).mean([1], keepdim: true));
            start += n;
        }

        return scope.MoveToOuter(cat(globalPerClass, 1).softmax(1) + (0.5 * cat(localPerClass, 1).softmax(1)));
    }

    /// <summary>Per image and prompt (K x 1 x D prototype sentences): the raw global logits and the local attention scores (both B x K).</summary>
    private (Tensor Global, Tensor Local) PromptScores(Tensor local, Tensor global, Tensor prompts)
    {
        var globalPrompts = GlobalText(prompts, ones(prompts.shape[0], 1, dtype: ScalarType.Bool, device: prompts.device)); // (K, D)
        var cosine = F.normalize(global, dim: -1).matmul(F.normalize(globalPrompts, dim: -1).t());
        var k = prompts.shape[0];
        var n = local.shape[1];
        var tokens = local.unsqueeze(1).expand(-1, k, -1, -1).reshape(-1, n, local.shape[2]); // (B*K, N, D)
        var prompt = prompts.unsqueeze(0).expand(local.shape[0], -1, -1, -1).reshape(-1, 1, prompts.shape[2]); // (B*K, 1, D)
        var attention = local_cross_attention.forward(new LocalAlignmentInput(tokens, prompt));
        var localScore = ((attention.TextAttention.mean([1, 2]) + attention.ImageAttention.mean([1, 2])) / 2).view(-1, k);
        return (logit_scale * cosine, localScore);
    }

    /// <summary>The sentences rebuilt from the prototype bank: its forward (Gumbel noise as configured) in training, the
    /// noise-free softmax(x E^T / tau) E outside it.</summary>
    private Tensor Prototypes(Tensor sentences)
    {
        if (training)
        {
            return sentence_bank.forward(sentences).Reconstructed;
        }

        var codebook = sentence_bank.Prototypes;
        return (sentences.matmul(codebook.t()) / _config.PrototypeTemperature).softmax(-1).matmul(codebook);
    }

    /// <summary>Sentence indices of whole texts: the real tokens between the first and the last (their [CLS] and [SEP]),
    /// a new sentence after each end token; one sentence when <paramref name="ends"/> is empty.</summary>
    private static Tensor InnerSentenceIndex(Tensor inputIds, Tensor attentionMask, IReadOnlyList<int> ends)
    {
        if (inputIds.dim() != 2 || !inputIds.shape.SequenceEqual(attentionMask.shape))
        {
            throw new ArgumentException($"Expected ids and mask of one shape [B, T], got [{string.Join(", ", inputIds.shape)}] and [{string.Join(", ", attentionMask.shape)}].", nameof(inputIds));
        }

        var rows = (int)inputIds.shape[0];
        var length = (int)inputIds.shape[1];
        var ids = inputIds.cpu().to(ScalarType.Int64).contiguous().data<long>().ToArray();
        var mask = attentionMask.cpu().to(ScalarType.Int64).contiguous().data<long>().ToArray();
        var endSet = ends.Select(e => (long)e).ToHashSet();
        var index = new long[ids.Length];
        for (var r = 0; r < rows; r++)
        {
            var last = -1;
            for (var i = 0; i < length; i++)
            {
                last = mask[(r * length) + i] != 0 ? i : last;
            }

            if (last < 2)
            {
                throw new ArgumentException($"Text {r} has no token between [CLS] and [SEP]: PRIOR embeds sentences, and an empty text has none.", nameof(inputIds));
            }

            var sentence = 1L;
            for (var i = 1; i < last; i++)
            {
                if (mask[(r * length) + i] == 0)
                {
                    continue;
                }

                index[(r * length) + i] = sentence;
                if (endSet.Contains(ids[(r * length) + i]) && i < last - 1)
                {
                    sentence++;
                }
            }
        }

        return tensor(index, [rows, length], ScalarType.Int64).to(inputIds.device);
    }

    /// <summary>The local (sentence) logit scale.</summary>
    public Tensor LocalLogitScale() => local_logit_scale.exp();

    /// <summary>The name a parameter of this model has in the released checkpoints (only the bank's codebook differs).</summary>
    public static string ReleasedName(string name) => name == "sentence_bank.prototypes" ? "sentence_bank.embed.weight" : name;

    /// <summary>
    /// Encodes images: the <c>layer4</c> map reshaped to (B, N, C) WITHOUT permuting the NCHW layout (as released:
    /// <c>local_features.view(B, -1, C)</c>), projected to D; and the attention-pooled feature, projected to D.
    /// </summary>
    /// <param name="images">(B x C x H x W), or (B x C x D x H x W) for the 3D variant, of side <see cref="PriorConfig.ImageSize"/>.</param>
    /// <returns>Local tokens (B x N x D) and the global embedding (B x D).</returns>
    public (Tensor Local, Tensor Global) EncodeImage(Tensor images)
    {
        ArgumentNullException.ThrowIfNull(images);
        using var scope = NewDisposeScope();
        var (local, pooled) = image_encoder.forward(images);
        var result = (local_image_projection.forward(local), global_image_projection.forward(pooled));
        scope.MoveToOuter(result.Item1, result.Item2);
        return result;
    }

    /// <summary>
    /// Encodes reports as sentences: the BERT token states are projected (<c>local_text_projection</c>) and averaged per
    /// sentence (the released <c>SentenceGather</c> with average pooling).
    /// </summary>
    /// <param name="inputIds">(B x T) token ids.</param>
    /// <param name="attentionMask">(B x T), 1 = token.</param>
    /// <param name="sentenceIndex">(B x T) int64: the 1-based sentence of each token, 0 (or negative) for tokens in no
    /// sentence ([CLS], [SEP], padding); see <see cref="SentenceIndex"/>.</param>
    /// <param name="maxSentences">The width S of the result (<see cref="PriorConfig.MaxSentences"/> when null); sentences past it are dropped.</param>
    /// <returns>Sentences (B x S x D, zero rows for padding) and their mask (B x S, bool).</returns>
    public (Tensor Sentences, Tensor Mask) EncodeSentences(Tensor inputIds, Tensor attentionMask, Tensor sentenceIndex, int? maxSentences = null)
    {
        ArgumentNullException.ThrowIfNull(inputIds);
        ArgumentNullException.ThrowIfNull(attentionMask);
        ArgumentNullException.ThrowIfNull(sentenceIndex);
        if (inputIds.dim() != 2 || !inputIds.shape.SequenceEqual(attentionMask.shape) || !inputIds.shape.SequenceEqual(sentenceIndex.shape) || inputIds.shape[1] > _config.MaxTextTokens)
        {
            throw new ArgumentException(
                $"PRIOR text input: expected ids, mask and sentence index of one shape [B, T] with T <= {_config.MaxTextTokens}, got [{string.Join(", ", inputIds.shape)}], [{string.Join(", ", attentionMask.shape)}] and [{string.Join(", ", sentenceIndex.shape)}].",
                nameof(sentenceIndex));
        }

        var s = maxSentences ?? _config.MaxSentences;
        using var scope = NewDisposeScope();
        var tokens = local_text_projection.forward(text_encoder.forward(inputIds, attentionMask));
        var slots = arange(1, s + 1, dtype: ScalarType.Int64, device: tokens.device);
        var membership = sentenceIndex.to(ScalarType.Int64).unsqueeze(1).eq(slots.view(1, s, 1)).to(tokens.dtype); // (B, S, T)
        var counts = membership.sum([2]);
        var mask = counts.gt(0);
        if (mask.any(1).logical_not().any().item<bool>())
        {
            throw new ArgumentException("Every report needs at least one sentence (a token with sentence index 1).", nameof(sentenceIndex));
        }

        if (s > 1 && mask.narrow(1, 1, s - 1).logical_and(mask.narrow(1, 0, s - 1).logical_not()).any().item<bool>())
        {
            throw new ArgumentException("Sentence indices must be consecutive from 1 (a sentence without tokens precedes a later one).", nameof(sentenceIndex));
        }

        var sentences = membership.matmul(tokens) / counts.clamp_min(1).unsqueeze(2);
        return (scope.MoveToOuter(sentences), scope.MoveToOuter(mask));
    }

    /// <summary>Encodes a batch for <see cref="ComputeLosses"/>.</summary>
    public PriorEncoding Encode(Tensor images, Tensor inputIds, Tensor attentionMask, Tensor sentenceIndex)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.shape[0] != inputIds.shape[0])
        {
            throw new ArgumentException($"PRIOR needs one report per image, got {images.shape[0]} images and {inputIds.shape[0]} reports.", nameof(inputIds));
        }

        using var scope = NewDisposeScope();
        var (local, global) = EncodeImage(images);
        var (sentences, mask) = EncodeSentences(inputIds, attentionMask, sentenceIndex);
        var encoding = new PriorEncoding(images.alias(), local, global, sentences, mask);
        scope.MoveToOuter(encoding.Images, encoding.LocalImage, encoding.GlobalImage, encoding.Sentences, encoding.SentenceMask);
        return encoding;
    }

    /// <summary>
    /// The global report embedding: the sentence attention pooling (mean sentence as the query, no positions, padded
    /// sentences masked) of (B x S x D) sentences.
    /// </summary>
    public Tensor GlobalText(Tensor sentences, Tensor mask) => global_text_attention.forward(sentences, mask);

    /// <summary>
    /// PRIOR's losses on an encoded batch, the stage given by <paramref name="weights"/> (see <see cref="PriorLossWeights"/>).
    /// Terms (unweighted; parts whose computation did not run are absent): <c>global</c>, <c>local_image</c>,
    /// <c>local_text</c>, and from stage 2 <c>proto</c>, in stage 3 <c>rec_image</c>, <c>spg</c>, <c>kl</c>, <c>gpa</c>.
    /// </summary>
    public LossOutput ComputeLosses(PriorEncoding encoding, PriorLossWeights weights)
    {
        ArgumentNullException.ThrowIfNull(encoding);
        ArgumentNullException.ThrowIfNull(weights);
        using var scope = NewDisposeScope();
        return Compute(encoding, weights, out _, out _).MoveToOuter(scope);
    }

    /// <summary>
    /// Stage 3's two reconstructions of an encoded batch: the image decoded from the local image map and its text
    /// context (B x 1 x H x W, or B x 1 x D x H x W), and the sentence decoder's outputs for the learned queries (B x Q x D).
    /// </summary>
    public (Tensor Image, Tensor Sentences) Reconstruct(PriorEncoding encoding)
    {
        ArgumentNullException.ThrowIfNull(encoding);
        using var scope = NewDisposeScope();
        _ = Compute(encoding, PriorLossWeights.Stage3, out var image, out var sentences);
        return (scope.MoveToOuter(image!), scope.MoveToOuter(sentences!));
    }

    private LossOutput Compute(PriorEncoding encoding, PriorLossWeights weights, out Tensor? imageReconstruction, out Tensor? generatedSentences)
    {
        imageReconstruction = null;
        generatedSentences = null;
        var terms = new List<KeyValuePair<string, Tensor>>();
        var sentences = encoding.Sentences;
        var mask = encoding.SentenceMask;
        var b = sentences.shape[0];
        var d = sentences.shape[2];
        if (weights.Reconstructs && sentences.shape[1] > _config.Queries)
        {
            // Stage 3 keeps the first num_queries sentences of each report (trancated_sentence_stack).
            sentences = sentences.narrow(1, 0, _config.Queries);
            mask = mask.narrow(1, 0, _config.Queries);
        }

        var maskF = mask.to(sentences.dtype).unsqueeze(2);
        Tensor? bankLogits = null;
        if (weights.UsesPrototypes)
        {
            var assignment = sentence_bank.forward(sentences);
            bankLogits = assignment.Logits;
            var real = mask.unsqueeze(2).expand_as(sentences);
            var rows = sentences.masked_select(real).view(-1, d);
            var rebuilt = assignment.Reconstructed.masked_select(real).view(-1, d);
            terms.Add(new(PriorLossWeights.PrototypeName, F.l1_loss(rebuilt, rows)));
            sentences = assignment.Reconstructed * maskF;
        }

        var globalText = GlobalText(sentences, mask);
        terms.Add(new(PriorLossWeights.GlobalName, Infonce(encoding.GlobalImage, globalText, LogitScale())));

        var aligned = local_cross_attention.forward(new LocalAlignmentInput(encoding.LocalImage, sentences, mask));
        using (var simsiam = new LocalImageAlignmentLoss(predictor.forward))
        {
            terms.Add(new(PriorLossWeights.LocalImageName, simsiam.forward(new EmbeddingPair(encoding.LocalImage, aligned.ImageContext)).Total));
        }

        using (var sentenceLoss = new SentenceContrastiveLoss())
        {
            terms.Add(new(PriorLossWeights.LocalTextName, sentenceLoss.forward(new SentenceContrastiveInput(sentences, aligned.TextContext, LocalLogitScale(), mask)).Total));
        }

        if (weights.Reconstructs)
        {
            // Image: both token grids viewed back as maps without a permute, as released (view(-1, D, h, w)).
            long[] map = [b, d, .. Enumerable.Repeat((long)_config.MapSide, _config.Image.SpatialDims)];
            var reconstruction = image_decoder.forward(encoding.LocalImage.reshape(map), aligned.ImageContext.reshape(map));
            terms.Add(new(PriorLossWeights.ImageReconstructionName, image_decoder.Loss(reconstruction, encoding.Images)));
            imageReconstruction = reconstruction;
            generatedSentences = AddReportReconstruction(terms, encoding.LocalImage, sentences, mask, bankLogits!, globalText);
        }

        var total = zeros([], sentences.dtype, sentences.device);
        foreach (var (name, term) in terms)
        {
            var w = weights[name];
            if (w != 0)
            {
                total = total + (w * term);
            }
        }

        return new LossOutput(total, terms.Select(t => new KeyValuePair<string, Tensor>(t.Key, t.Value.detach())).ToList());
    }

    /// <summary>
    /// Zero-shot classification as released (<c>ZeroShotClassificationModel.shared_step</c>, one prompt per class,
    /// "{class} is observed"): per image, softmax over classes of the global logits plus 0.5 x softmax of the local scores
    /// (the mean of both sigmoid attention maps between the image tokens and the prompt's prototype).
    /// </summary>
    /// <param name="images">Images or volumes (B x C x ...).</param>
    /// <param name="promptIds">One tokenized prompt per class (K x T), padded to the same length as released
    /// (<c>padding='max_length'</c>): tokens 1 .. T-2 with mask 1 form the prompt's sentence.</param>
    /// <param name="promptMask">Their attention mask (K x T).</param>
    /// <returns>Scores (B x K); the predicted class is the arg max.</returns>
    /// <remarks>As released, the global logits are the raw <c>logit_scale</c> parameter (not its exponential) times the
    /// cosine similarity, and the prompt goes through the prototype bank (with Gumbel noise unless the bank's noise is off).</remarks>
    public Tensor ZeroShotScores(Tensor images, Tensor promptIds, Tensor promptMask)
    {
        ArgumentNullException.ThrowIfNull(promptIds);
        ArgumentNullException.ThrowIfNull(promptMask);
        if (promptIds.dim() != 2 || promptIds.shape[1] < 3 || !promptIds.shape.SequenceEqual(promptMask.shape))
        {
            throw new ArgumentException($"Prompts: expected ids and mask of one shape [K, T] with T >= 3, got [{string.Join(", ", promptIds.shape)}] and [{string.Join(", ", promptMask.shape)}].", nameof(promptIds));
        }

        using var scope = NewDisposeScope();
        var (local, global) = EncodeImage(images);
        var t = promptIds.shape[1];
        var columns = arange(t, dtype: ScalarType.Int64, device: promptIds.device);
        var index = promptMask.ne(0).logical_and(columns.ge(1).logical_and(columns.le(t - 2)).unsqueeze(0)).to(ScalarType.Int64);
        var (sentence, _) = EncodeSentences(promptIds, promptMask, index, 1); // (K, 1, D)
        var prompts = sentence_bank.forward(sentence).Reconstructed; // (K, 1, D)
        var (globalLogits, localScores) = PromptScores(local, global, prompts);
        return scope.MoveToOuter(globalLogits.softmax(1) + (0.5 * localScores.softmax(1)));
    }

    /// <summary>
    /// Sentence indices for <see cref="EncodeSentences"/> from token ids: after the first token ([CLS]), consecutive real
    /// tokens form a sentence that ends with a sentence-ending token (such as "."), which belongs to it; special tokens
    /// ([SEP], [PAD]) belong to none. This stands in for the released data pipeline, which tokenized each sentence of a
    /// report separately.
    /// </summary>
    /// <param name="inputIds">(B x T) token ids.</param>
    /// <param name="attentionMask">(B x T), 1 = token.</param>
    /// <param name="sentenceEnds">Ids that end a sentence.</param>
    /// <param name="specialIds">Ids in no sentence ([CLS], [SEP], [PAD]).</param>
    /// <returns>(B x T) int64, 1-based sentence per token, 0 elsewhere.</returns>
    public static Tensor SentenceIndex(Tensor inputIds, Tensor attentionMask, IReadOnlySet<long> sentenceEnds, IReadOnlySet<long> specialIds)
    {
        ArgumentNullException.ThrowIfNull(inputIds);
        ArgumentNullException.ThrowIfNull(attentionMask);
        ArgumentNullException.ThrowIfNull(sentenceEnds);
        ArgumentNullException.ThrowIfNull(specialIds);
        if (inputIds.dim() != 2 || !inputIds.shape.SequenceEqual(attentionMask.shape))
        {
            throw new ArgumentException($"Expected ids and mask of one shape [B, T], got [{string.Join(", ", inputIds.shape)}] and [{string.Join(", ", attentionMask.shape)}].", nameof(inputIds));
        }

        using var scope = NewDisposeScope();
        var rows = (int)inputIds.shape[0];
        var length = (int)inputIds.shape[1];
        var ids = inputIds.cpu().to(ScalarType.Int64).contiguous().data<long>().ToArray();
        var mask = attentionMask.cpu().to(ScalarType.Int64).contiguous().data<long>().ToArray();
        var index = new long[ids.Length];
        for (var r = 0; r < rows; r++)
        {
            var sentence = 1L;
            var open = false;
            for (var i = 1; i < length; i++)
            {
                var id = ids[(r * length) + i];
                if (mask[(r * length) + i] == 0 || specialIds.Contains(id))
                {
                    continue;
                }

                index[(r * length) + i] = sentence;
                open = true;
                if (sentenceEnds.Contains(id))
                {
                    sentence++;
                    open = false;
                }
            }

            _ = open;
        }

        return scope.MoveToOuter(tensor(index, [rows, length], ScalarType.Int64).to(inputIds.device));
    }

    private static Tensor Infonce(Tensor image, Tensor text, Tensor scale)
    {
        using var clip = new ClipLoss();
        return clip.forward(new ContrastiveInput(F.normalize(image, dim: -1), F.normalize(text, dim: -1), scale)).Total;
    }

    /// <summary>The released <c>recon_report</c> and <c>spg_loss</c>.</summary>
    private Tensor AddReportReconstruction(List<KeyValuePair<string, Tensor>> terms, Tensor localImage, Tensor prototypes, Tensor mask, Tensor targetLogits, Tensor globalText)
    {
        var b = localImage.shape[0];
        var q = _config.Queries;
        var d = localImage.shape[2];
        var generated = sentence_decoder.forward(prototype_queries.expand(b, -1, -1), localImage); // (B, Q, D)
        var s = prototypes.shape[1];
        var padded = s < q ? F.pad(prototypes, [0, 0, 0, q - s]) : prototypes; // zero rows up to Q
        var paddedMask = s < q ? F.pad(mask, [0, q - s]) : mask;

        // Hungarian matching on the L1 cost, per report; as released the outputs are re-ordered by the matched column
        // indices (logit[inds[1]]) before the comparison with the prototypes in their order.
        var order = Match(generated, padded);
        var rearranged = generated.gather(1, order.unsqueeze(2).expand(-1, -1, d));
        terms.Add(new(PriorLossWeights.SentenceGenerationName, F.l1_loss(rearranged, padded)));

        // KL(softmax(l_gt) || softmax(G E^T)) over the real sentences, summed and divided by their number (batchmean).
        var realRows = paddedMask.nonzero(); // (N, 2)
        var kRows = targetLogits.shape[2];
        var gt = targetLogits.masked_select(mask.unsqueeze(2).expand_as(targetLogits)).view(-1, kRows).log_softmax(-1);
        var roi = rearranged.masked_select(paddedMask.unsqueeze(2).expand_as(rearranged)).view(-1, d);
        var predicted = roi.matmul(sentence_bank.Prototypes.t()).log_softmax(-1);
        terms.Add(new(PriorLossWeights.KlName, (gt.exp() * (gt - predicted)).sum() / realRows.shape[0]));

        // Global prediction alignment: the generated sentences through the bank, pooled, against the report.
        var generatedPrototypes = sentence_bank.forward(rearranged).Reconstructed;
        var predictedGlobal = GlobalText(generatedPrototypes, paddedMask);
        terms.Add(new(PriorLossWeights.GlobalPredictionName, Infonce(predictedGlobal, globalText, LogitScale())));
        return generated;
    }

    /// <summary>Per sample, scipy's linear_sum_assignment on cdist(G, T, p=1): the column matched to each row (B x Q).</summary>
    private static Tensor Match(Tensor generated, Tensor targets)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var b = (int)generated.shape[0];
        var q = (int)generated.shape[1];
        var cost = cdist(generated.detach().to(ScalarType.Float64), targets.detach().to(ScalarType.Float64), p: 1).cpu().contiguous().data<double>().ToArray();
        var indices = new long[b * q];
        for (var i = 0; i < b; i++)
        {
            var columns = LinearAssignment.Solve(cost.AsSpan(i * q * q, q * q), q, q);
            for (var r = 0; r < q; r++)
            {
                indices[(i * q) + r] = columns[r];
            }
        }

        return scope.MoveToOuter(tensor(indices, [b, q], ScalarType.Int64).to(generated.device));
    }

    /// <summary>The released image encoder wrapper: <c>encoder</c> (ResNet without fc) and <c>atten_pool</c>.</summary>
    private sealed class PriorImageEncoder : Module<Tensor, (Tensor Local, Tensor Pooled)>
    {
#pragma warning disable IDE1006, SA1300 // State-dict names follow the released code.
        private readonly ResNet encoder;
        private readonly ClipAttentionPool atten_pool;
#pragma warning restore IDE1006, SA1300
        private readonly PriorConfig _config;

        public PriorImageEncoder(PriorConfig config, Device? device)
            : base(nameof(PriorImageEncoder))
        {
            _config = config;
            encoder = new ResNet(config.Image, device);
            atten_pool = new ClipAttentionPool(config.Image.FeatureWidth, config.ImagePoolHeads, config.LocalTokens, device: device);
            RegisterComponents();
        }

        public ResNet Backbone => encoder;

        public override (Tensor Local, Tensor Pooled) forward(Tensor images)
        {
            var side = _config.ImageSize;
            if (images.dim() != _config.Image.SpatialDims + 2 || images.shape.Skip(2).Any(s => s != side))
            {
                var shape = string.Join(", ", Enumerable.Repeat(side.ToString(System.Globalization.CultureInfo.InvariantCulture), _config.Image.SpatialDims));
                throw new ArgumentException($"PRIOR image input: expected [B, {_config.Image.InChannels}, {shape}], got [{string.Join(", ", images.shape)}].", nameof(images));
            }

            using var scope = NewDisposeScope();
            var map = encoder.Features(images).Map;
            var local = map.reshape(map.shape[0], -1, map.shape[1]); // a plain view of NCHW: no permute, as released
            var pooled = atten_pool.ForwardFeatureMap(map);
            return (scope.MoveToOuter(local), scope.MoveToOuter(pooled));
        }
    }

    /// <summary>The released text encoder wrapper (<c>ClinicalBERT</c>): <c>encoder</c> = BERT.</summary>
    private sealed class PriorTextEncoder : Module<Tensor, Tensor, Tensor>
    {
#pragma warning disable IDE1006, SA1300 // State-dict names follow the released code.
        private readonly BertModel encoder;
#pragma warning restore IDE1006, SA1300

        public PriorTextEncoder(BertConfig config, Device? device)
            : base(nameof(PriorTextEncoder))
        {
            encoder = new BertModel(config, device);
            RegisterComponents();
        }

        public BertModel Bert => encoder;

        public override Tensor forward(Tensor ids, Tensor mask) => encoder.forward(ids, mask);
    }
}
