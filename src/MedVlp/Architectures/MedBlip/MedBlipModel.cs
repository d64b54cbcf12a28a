using MedVlp.Inference.Generation;
using MedVlp.Losses;
using MedVlp.Modeling;
using MedVlp.Modeling.Backbones;
using MedVlp.Modeling.Blocks;
using MedVlp.Text;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace MedVlp.Architectures.MedBlip;

/// <summary>
/// One MedBLIP training batch as token ids: the volumes, the Q-Former's text (report and "question + answer", WordPiece,
/// right-padded) and the language model's prompt and answer (GPT-2 BPE, right-padded), the input of
/// <see cref="MedBlipModel.ComputeLoss"/>. Does not own its tensors.
/// </summary>
/// <param name="Volumes">(B x 1 x D x H x W) preprocessed volumes.</param>
/// <param name="ReportIds">(B x T) Q-Former token ids of the EHR text (without the diagnosis).</param>
/// <param name="ReportMask">(B x T) 1 = token.</param>
/// <param name="QaIds">(B x T) Q-Former token ids of "Question: ... Answer: label".</param>
/// <param name="QaMask">(B x T) 1 = token.</param>
/// <param name="PromptIds">(B x P) language-model ids of "EHR text Question: ... Answer: ".</param>
/// <param name="PromptMask">(B x P) 1 = token.</param>
/// <param name="AnswerIds">(B x A) language-model ids of the answer (followed by end-of-text).</param>
/// <param name="AnswerMask">(B x A) 1 = token.</param>
public sealed record MedBlipBatch(Tensor Volumes, Tensor ReportIds, Tensor ReportMask, Tensor QaIds, Tensor QaMask, Tensor PromptIds, Tensor PromptMask, Tensor AnswerIds, Tensor AnswerMask);

/// <summary>
/// MedBLIP (Chen et al., 2023; released code Qybc/MedBLIP <c>modeling_medblip_biomedlm.py</c>), state-dict names as
/// released: <c>visual_encoder</c> (<see cref="MedBlipVisionEncoder"/>: trainable 3D patch and position embeddings in
/// front of frozen EVA blocks), <c>ln_vision</c>, <c>Qformer</c> (the BLIP-2 Q-Former, LAVIS names, its
/// <c>query_tokens</c> inside: <c>Qformer.query_tokens</c>), <c>vision_proj</c>, <c>text_proj</c>, <c>qa_proj</c>
/// (to the contrastive space), <c>proj</c> (queries into the language model's width, "llm_proj"), <c>temp</c> (learnable
/// temperature, 0.07) and <c>lm_model</c> (a frozen GPT-2-layout <see cref="Gpt2LMHeadModel"/>).
/// </summary>
/// <remarks>
/// <para>Loss = ITC(report) + ITC(question + answer) + LM (<see cref="QueryContrastiveLoss"/>: query-max similarity,
/// label smoothing 0.1). The language model sees [prompt; proj(queries); answer] (each right-padded, the padding masked);
/// its labels ignore the image tokens and padding and score the prompt as released unless
/// <see cref="MedBlipConfig.ScorePrompt"/> is false. Positions count real tokens only (as Hugging Face's generate does),
/// so that training and decoding place the image tokens alike; the released code numbers padded positions too.</para>
/// <para>The released code runs the Q-Former's text branch after deleting its word embeddings and feeds it GPT-2 ids,
/// which cannot run as written; MedVlp keeps the Q-Former's own BERT embeddings and WordPiece tokenizer for text, the
/// BLIP-2 way.</para>
/// <para>The language model is frozen (component <c>lm_model</c>) and so are the EVA blocks; gradients flow through
/// both into <c>proj</c>, the Q-Former and the 3D embedding.</para>
/// </remarks>
public sealed class MedBlipModel : CompositeModel, IQuestionAnsweringModel, IVolumeInputModel
{
    /// <summary>Component names.</summary>
    public const string VisionComponent = "visual_encoder", QFormerComponent = "Qformer", LanguageModelComponent = "lm_model";

    /// <summary>The name of the language model's tokenizer in a model package (the Q-Former's is the default, <c>text</c>).</summary>
    public const string LanguageTokenizerName = "lm";

#pragma warning disable IDE1006, SA1300 // State-dict names follow the released MedBLIP.
    private readonly MedBlipVisionEncoder visual_encoder;
    private readonly LayerNorm ln_vision;
    private readonly QFormer Qformer;
    private readonly Linear vision_proj;
    private readonly Linear text_proj;
    private readonly Linear qa_proj;
    private readonly Linear proj;
    private readonly Gpt2LMHeadModel lm_model;
    private readonly Parameter temp;
#pragma warning restore IDE1006, SA1300
    private readonly QueryContrastiveLoss _itc = new();
    private readonly MedBlipConfig _config;

    /// <summary>Creates the model with fresh weights (<c>meta</c>: the structure without memory). The language model is frozen.</summary>
    public MedBlipModel(MedBlipConfig config, Device? device = null)
        : base(nameof(MedBlipModel))
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        _config = config;
        visual_encoder = new MedBlipVisionEncoder(config, device);
        ln_vision = LayerNorm(config.VisionWidth, device: device);
        Qformer = new QFormer(config.QFormer, device);
        var d = config.QFormer.HiddenSize;
        vision_proj = Linear(d, config.EmbedDim, device: device);
        text_proj = Linear(d, config.EmbedDim, device: device);
        qa_proj = Linear(d, config.EmbedDim, device: device);
        proj = Linear(d, config.LanguageModel.NEmbd, device: device);
        lm_model = new Gpt2LMHeadModel(config.LanguageModel, device);
        temp = new Parameter(full([], config.InitialTemperature, device: device));
        RegisterComponents();
        Freeze(LanguageModelComponent);
    }

    /// <inheritdoc />
    public override ArchitectureConfig Config => _config;

    /// <summary>The sizes.</summary>
    public MedBlipConfig MedBlipConfig => _config;

    /// <inheritdoc />
    public IReadOnlyList<long> ImageInputShape => [1, _config.InputSize, _config.InputSize, _config.InputSize];

    /// <summary>The frozen language model.</summary>
    public Gpt2LMHeadModel LanguageModel => lm_model;

    /// <summary>The Q-Former.</summary>
    public QFormer QFormer => Qformer;

    /// <summary>The vision encoder (trainable 3D embedding, frozen EVA blocks): a 2D EVA checkpoint's <c>blocks.*</c> and
    /// <c>cls_token</c> load into it by name.</summary>
    public MedBlipVisionEncoder VisionEncoder => visual_encoder;

    /// <summary>The learnable temperature (0-d).</summary>
    public Parameter Temperature => temp;

    /// <summary>The dtype the frozen language model is held in.</summary>
    public ScalarType LanguageModelDtype => lm_model.Transformer.TokenEmbeddings.weight!.dtype;

    /// <summary>The dtype the frozen EVA blocks are held in.</summary>
    public ScalarType VisionBlocksDtype => visual_encoder.BlocksDtype;

    /// <summary>
    /// Holds the frozen parts, the EVA blocks and the language model, in <paramref name="dtype"/> (float32, float16 or
    /// bfloat16; the released code holds both in fp16) to halve their memory. The trainable parts (3D embedding,
    /// <c>ln_vision</c>, Q-Former, projections, temperature) stay float32; activations are cast at the boundaries, so
    /// gradients still flow through the frozen parts. Call it after loading weights; float32 casts back, but the
    /// 16-bit rounding of the frozen weights stays (reload them for exact float32).
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="dtype"/> is not a float type this supports.</exception>
    public void SetFrozenPrecision(ScalarType dtype)
    {
        if (dtype is not (ScalarType.Float32 or ScalarType.Float16 or ScalarType.BFloat16))
        {
            throw new ArgumentException($"Frozen parts can be held in float32, float16 or bfloat16, not {dtype}.", nameof(dtype));
        }

        visual_encoder.SetBlocksDtype(dtype);
        lm_model.to(dtype);
    }

    /// <summary>Image tokens after <c>ln_vision</c> (B x (1 + patches) x vision width).</summary>
    public Tensor EncodeImageTokens(Tensor volumes)
    {
        using var scope = NewDisposeScope();
        return scope.MoveToOuter(ln_vision.forward(visual_encoder.forward(volumes)));
    }

    /// <summary>Q-Former query outputs (B x queries x hidden) of volumes.</summary>
    public Tensor EncodeQueries(Tensor volumes)
    {
        using var scope = NewDisposeScope();
        return scope.MoveToOuter(Qformer.forward(EncodeImageTokens(volumes)));
    }

    /// <summary>Normalised per-query image features (B x queries x embed) from query outputs.</summary>
    public Tensor ImageFeatures(Tensor queryOutput)
    {
        using var scope = NewDisposeScope();
        return scope.MoveToOuter(F.normalize(vision_proj.forward(queryOutput), dim: -1));
    }

    /// <summary>Normalised text features (B x embed): the Q-Former's text branch, CLS state, <c>text_proj</c> (report) or
    /// <c>qa_proj</c> (question + answer).</summary>
    public Tensor TextFeatures(Tensor ids, Tensor mask, bool questionAnswer = false)
    {
        using var scope = NewDisposeScope();
        var cls = Qformer.EncodeText(ids, mask).select(1, 0);
        return scope.MoveToOuter(F.normalize((questionAnswer ? qa_proj : text_proj).forward(cls), dim: -1));
    }

    /// <summary>Query outputs projected into the language model's width (B x queries x n_embd): the image tokens of the prompt.</summary>
    public Tensor LanguageImageTokens(Tensor queryOutput)
    {
        using var scope = NewDisposeScope();
        return scope.MoveToOuter(proj.forward(queryOutput));
    }

    /// <summary>The training loss: terms <c>itc_report</c>, <c>itc_qa</c> and <c>lm</c>, total their sum.</summary>
    public LossOutput ComputeLoss(MedBlipBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        using var scope = NewDisposeScope();
        var queries = EncodeQueries(batch.Volumes);
        var (lmSum, lmCount) = LanguageModelTokenLosses(queries, batch);
        var output = LossFromFeatures(ImageFeatures(queries), TextFeatures(batch.ReportIds, batch.ReportMask), TextFeatures(batch.QaIds, batch.QaMask, questionAnswer: true), lmSum, lmCount);
        return output.MoveToOuter(scope);
    }

    /// <summary>
    /// The training loss from per-example features (what a training objective caches across micro-batches):
    /// ITC(report) + ITC(question + answer), both with the learnable temperature, + the language-modelling loss
    /// <c>sum(lmSum) / sum(lmCount)</c>. Terms <c>itc_report</c>, <c>itc_qa</c>, <c>lm</c>.
    /// </summary>
    /// <param name="imageFeatures">(B x queries x embed) normalised query features (<see cref="ImageFeatures"/>).</param>
    /// <param name="reportFeatures">(B x embed) normalised report features.</param>
    /// <param name="qaFeatures">(B x embed) normalised question + answer features.</param>
    /// <param name="lmSum">(B) summed token losses (<see cref="LanguageModelTokenLosses"/>).</param>
    /// <param name="lmCount">(B) scored tokens.</param>
    public LossOutput LossFromFeatures(Tensor imageFeatures, Tensor reportFeatures, Tensor qaFeatures, Tensor lmSum, Tensor lmCount)
    {
        ArgumentNullException.ThrowIfNull(imageFeatures);
        ArgumentNullException.ThrowIfNull(reportFeatures);
        ArgumentNullException.ThrowIfNull(qaFeatures);
        ArgumentNullException.ThrowIfNull(lmSum);
        ArgumentNullException.ThrowIfNull(lmCount);
        using var scope = NewDisposeScope();
        var scale = temp.reciprocal();
        using var report = _itc.forward(new QueryContrastiveInput(imageFeatures, reportFeatures, scale));
        using var qa = _itc.forward(new QueryContrastiveInput(imageFeatures, qaFeatures, scale));
        var lm = lmSum.sum() / lmCount.sum().clamp_min(1);
        var itcReport = report.Total.alias();
        var itcQa = qa.Total.alias();
        var total = itcReport + itcQa + lm;
        var output = new LossOutput(total, [new("itc_report", itcReport), new("itc_qa", itcQa), new("lm", lm)]);
        return output.MoveToOuter(scope);
    }

    /// <summary>The language-modelling loss of [prompt; image tokens; answer] (shifted cross-entropy, -100 ignored): the
    /// mean over every scored token of the batch.</summary>
    public Tensor LanguageModelLoss(Tensor queryOutput, MedBlipBatch batch)
    {
        using var scope = NewDisposeScope();
        var (sum, count) = LanguageModelTokenLosses(queryOutput, batch);
        return scope.MoveToOuter(sum.sum() / count.sum().clamp_min(1));
    }

    /// <summary>
    /// Per row, the summed negative log-likelihood of its scored tokens and their count (B each, float32): the
    /// language-modelling loss is <c>sum / count</c> over the whole batch, which stays exact when a batch is split into
    /// micro-batches. The vocabulary projection runs only where a label is scored (the answer, and the prompt unless
    /// answer-only); the logits of the other positions would be thrown away.
    /// </summary>
    public (Tensor Sum, Tensor Count) LanguageModelTokenLosses(Tensor queryOutput, MedBlipBatch batch)
    {
        ArgumentNullException.ThrowIfNull(queryOutput);
        ArgumentNullException.ThrowIfNull(batch);
        using var scope = NewDisposeScope();
        var image = LanguageImageTokens(queryOutput);
        var b = image.shape[0];
        var q = image.shape[1];
        var wte = lm_model.Transformer.TokenEmbeddings;
        var lmDtype = LanguageModelDtype;
        var embeds = cat([wte.forward(batch.PromptIds), image.to(lmDtype), wte.forward(batch.AnswerIds)], 1);
        var imageMask = ones(b, q, ScalarType.Int64, image.device);
        var mask = cat([batch.PromptMask.to(ScalarType.Int64), imageMask, batch.AnswerMask.to(ScalarType.Int64)], 1);
        var ignore = Gpt2LMHeadModel.IgnoreIndex;
        var promptLabels = _config.ScorePrompt ? batch.PromptIds.masked_fill(batch.PromptMask.eq(0), ignore) : full_like(batch.PromptIds, ignore);
        var labels = cat([promptLabels, full(b, q, ignore, ScalarType.Int64, image.device), batch.AnswerIds.masked_fill(batch.AnswerMask.eq(0), ignore)], 1);
        var positions = (mask.cumsum(1) - 1).clamp_min(0);
        var hidden = lm_model.Transformer.forward(null, embeds, mask, positions).to(ScalarType.Float32);
        var length = hidden.shape[1];
        var targets = labels.narrow(1, 1, length - 1).reshape(-1);
        var scored = targets.ne(ignore).nonzero().squeeze(1);
        var states = hidden.narrow(1, 0, length - 1).reshape(-1, hidden.shape[2]).index_select(0, scored);
        var logits = F.linear(states.to(lmDtype), lm_model.OutputEmbeddingWeight).to(ScalarType.Float32);
        var nll = F.cross_entropy(logits, targets.index_select(0, scored), reduction: Reduction.None);
        var rows = scored.div(length - 1, rounding_mode: RoundingMode.floor);
        var sum = zeros(b, ScalarType.Float32, image.device).index_add(0, rows, nll, 1);
        var count = zeros(b, ScalarType.Float32, image.device).index_add(0, rows, ones_like(nll), 1);
        return (scope.MoveToOuter(sum), scope.MoveToOuter(count));
    }

    /// <summary>
    /// Greedy decoding with the key/value cache after [prompt; image tokens], one volume at a time (no padding), through
    /// the shared <see cref="TextGenerator"/>: returns the new token ids of each row (up to and without end-of-text).
    /// </summary>
    /// <param name="volumes">(B x 1 x D x H x W) preprocessed volumes.</param>
    /// <param name="prompts">The language-model ids of each row's prompt.</param>
    /// <param name="maxNewTokens">The most tokens to generate.</param>
    /// <param name="endOfText">The end-of-text id.</param>
    /// <param name="cancellationToken">Stops between tokens.</param>
    public IReadOnlyList<long[]> GenerateGreedy(Tensor volumes, IReadOnlyList<IReadOnlyList<int>> prompts, int maxNewTokens, long endOfText, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(volumes);
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxNewTokens);
        if (prompts.Count != volumes.shape[0])
        {
            throw new ArgumentException($"{prompts.Count} prompts for {volumes.shape[0]} volumes.", nameof(prompts));
        }

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var image = LanguageImageTokens(EncodeQueries(volumes));
        var generator = new TextGenerator();
        var options = new GenerationOptions { MaxNewTokens = maxNewTokens };
        var result = new List<long[]>(prompts.Count);
        for (var n = 0; n < prompts.Count; n++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var head = AnswerHead(image.narrow(0, n, 1), prompts[n], endOfText);
            result.Add([.. generator.Generate(head, options, cancellationToken).TokenIds.Select(i => (long)i)]);
        }

        return result;
    }

    /// <inheritdoc/>
    /// <remarks>The package's <c>lm</c> tokenizer when it has one, otherwise GPT-2's byte-level BPE (the released model's).</remarks>
    public TextTokenizer AnswerTokenizer(IReadOnlyDictionary<string, TextTokenizer> packageTokenizers)
    {
        ArgumentNullException.ThrowIfNull(packageTokenizers);
        return packageTokenizers.TryGetValue(LanguageTokenizerName, out var tokenizer) ? tokenizer : new Gpt2TextTokenizer();
    }

    /// <inheritdoc/>
    /// <remarks>MedBLIP's prompt: <c>"&lt;context&gt; Question: &lt;question&gt; Answer: "</c>.</remarks>
    public string FormatPrompt(string question, string? context) => MedBlipText.Prompt(context ?? "", question);

    /// <inheritdoc/>
    /// <remarks>Keeps the prompt's last <see cref="MedBlipConfig.MaxTextTokens"/> tokens (the question stays whole), then the
    /// 32 image tokens; the answer ends at GPT-2's end-of-text.</remarks>
    public ILanguageHead StartAnswer(Tensor volume, IReadOnlyList<int> promptTokenIds)
    {
        ArgumentNullException.ThrowIfNull(volume);
        ArgumentNullException.ThrowIfNull(promptTokenIds);
        if (volume.Dimensions != 5 || volume.shape[0] != 1)
        {
            throw new ArgumentException($"StartAnswer takes one preprocessed volume (1 x 1 x D x H x W), got [{string.Join(", ", volume.shape)}].", nameof(volume));
        }

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var kept = promptTokenIds.Count <= _config.MaxTextTokens ? promptTokenIds : [.. promptTokenIds.Skip(promptTokenIds.Count - _config.MaxTextTokens)];
        return AnswerHead(LanguageImageTokens(EncodeQueries(volume)), kept, MedBlipText.EndOfText);
    }

    private Gpt2LanguageHead AnswerHead(Tensor image, IReadOnlyList<int> prompt, long endOfText)
    {
        using var scope = NewDisposeScope();
        var ids = prompt.Count == 0 ? null : tensor(prompt.Select(i => (long)i).ToArray(), device: image.device);
        return new Gpt2LanguageHead(lm_model, ids, image.to(LanguageModelDtype), endOfText);
    }
}
