using System.Runtime.CompilerServices;
using MedVlp.Losses;
using MedVlp.Text;
using MedVlp.Training;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MedVlp.Architectures.Colipri;

/// <summary>
/// One COLIPRI training batch: preprocessed volumes, and for the paired ones their report tokens and per-finding labels
/// (image-only volumes have <see cref="Paired"/> false and contribute to masked image modelling only).
/// </summary>
/// <param name="Volumes">B x 1 x S x S x S.</param>
/// <param name="ReportIds">B x T report token ids (rows of unpaired volumes are ignored).</param>
/// <param name="ReportMask">B x T attention mask of the reports.</param>
/// <param name="Paired">B booleans: the volume has a report.</param>
/// <param name="FindingLabels">B x F labels from the reports (1 present, 0 negated, -1 unknown).</param>
public sealed record ColipriBatch(Tensor Volumes, Tensor ReportIds, Tensor ReportMask, Tensor Paired, Tensor FindingLabels);

/// <summary>
/// COLIPRI's objectives composed in one loss, as a <see cref="TrainingObjective"/> for <see cref="Trainer"/>:
/// contrastive image-report (CLIP or SigLIP, on the paired rows), report generation (teacher-forced language modelling
/// of the report from the image tokens, paired rows), masked image modelling (every row, paired or image-only) and
/// opposite sentences (<see cref="OppositeSentenceLoss"/> against the findings <see cref="ReportFindingLabeler"/> reads
/// from each report), each with the weight of <see cref="ColipriConfig"/> (a stage may change it: parts
/// <c>contrastive</c>, <c>report</c>, <c>masked_image</c>, <c>opposite_sentence</c>; a term whose weight is 0 is not computed).
/// </summary>
/// <remarks>
/// <para><see cref="Encode"/> returns per-row features (pooled image and report embeddings, per-row sums and counts of
/// the language-modelling and reconstruction errors, finding labels), so gradient accumulation is exact: the
/// contrastive term sees the negatives of the whole accumulated batch and the other terms are means over all of its
/// tokens, patches and (row, finding) pairs. The opposite sentences are embedded once per step, in
/// <see cref="ComputeLoss"/>.</para>
/// <para>Masks of masked image modelling come from a per-batch seed drawn from libtorch's global generator the first
/// time a batch is encoded (so the trainer's seed and checkpoints make them reproducible, and the second encoding of a
/// micro-batch under accumulation masks the same patches), or from the generator passed to <see cref="Compute"/>.</para>
/// </remarks>
public sealed class ColipriObjective : TrainingObjective
{
    /// <summary>The names of the loss parts (also the logged terms).</summary>
    public static IReadOnlyList<string> Parts { get; } = ["contrastive", "report", "masked_image", "opposite_sentence"];

    private readonly ColipriModel model;
    private readonly ReportFindingLabeler labeler;
    private readonly Losses losses;
    private readonly Tensor sentenceIds;
    private readonly Tensor sentenceMask;
    private readonly int findingCount;
    private readonly Dictionary<string, double> weights;
    private readonly ConditionalWeakTable<TrainingBatch, StrongBox<ulong>> maskSeeds = [];

    /// <summary>Creates the objective.</summary>
    /// <param name="model">The model being trained.</param>
    /// <param name="tokenizer">The report tokenizer (for the opposite sentences).</param>
    /// <param name="findings">The findings whose opposite sentences are scored (label order of <see cref="ColipriBatch.FindingLabels"/>).</param>
    public ColipriObjective(ColipriModel model, TextTokenizer tokenizer, IReadOnlyList<FindingDefinition> findings)
        : this(model, tokenizer, findings, new Losses(model?.Sizes.Contrastive ?? ColipriContrastive.Clip))
    {
    }

    /// <summary>Creates the objective for a <c>colipri</c> model package (its tokenizer embeds the opposite sentences).</summary>
    /// <param name="model">The package.</param>
    /// <param name="findings">The findings whose opposite sentences are scored and whose labels are read from each report.</param>
    /// <exception cref="ArgumentException">The model is not a COLIPRI.</exception>
    public ColipriObjective(VisionLanguageModel model, IReadOnlyList<FindingDefinition> findings)
        : this(Checked(model), model.Tokenizer, findings)
    {
    }

    private ColipriObjective(ColipriModel model, TextTokenizer tokenizer, IReadOnlyList<FindingDefinition> findings, Losses losses)
        : base(model, losses)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(findings);
        this.model = model;
        this.losses = losses;
        labeler = new ReportFindingLabeler(findings);
        findingCount = findings.Count;
        var c = model.Sizes;
        weights = new Dictionary<string, double>(StringComparer.Ordinal)
        {
            ["contrastive"] = c.ContrastiveWeight,
            ["report"] = c.ReportWeight,
            ["masked_image"] = c.MaskedImageWeight,
            ["opposite_sentence"] = c.OppositeSentenceWeight,
        };
        var sentences = findings.SelectMany(f => new[] { f.Affirmative, f.Negated }).ToArray();
        var encoded = tokenizer.EncodeBatch(sentences, c.MaxTextTokens);
        sentenceIds = tensor(encoded.Ids.ToArray(), [encoded.BatchSize, encoded.SequenceLength]).DetachFromDisposeScope();
        sentenceMask = tensor(encoded.AttentionMask.ToArray(), [encoded.BatchSize, encoded.SequenceLength]).DetachFromDisposeScope();
    }

    /// <inheritdoc />
    public override IReadOnlyList<string> LossParts => Parts;

    /// <summary>The labeler that reads each report's findings (in the order of the opposite sentences).</summary>
    public ReportFindingLabeler Labeler => labeler;

    /// <summary>The current weight of a loss part.</summary>
    public double Weight(string part) => weights.TryGetValue(part, out var w) ? w : throw new KeyNotFoundException($"COLIPRI has no loss part \"{part}\" (it has {string.Join(", ", Parts)}).");

    /// <inheritdoc />
    public override void SetLossWeight(string part, double weight)
    {
        _ = Weight(part);
        if (!double.IsFinite(weight) || weight < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(weight), weight, $"The weight of \"{part}\" must be finite and non-negative.");
        }

        weights[part] = weight;
    }

    /// <inheritdoc />
    /// <exception cref="ArgumentException">The batch carries no report texts (<see cref="TrainingBatch.Reports"/>), which the finding labels are read from.</exception>
    public override FeatureSet Encode(TrainingBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var reports = batch.Reports ?? throw new ArgumentException(
            "COLIPRI reads each paired row's finding labels from its report text (TrainingBatch.Reports); this batch carries tokens only.", nameof(batch));
        using var scope = NewDisposeScope();
        var device = batch.Volumes.device;
        var paired = tensor(batch.Paired.ToArray(), device: device);
        var labels = tensor(reports.SelectMany(r => string.IsNullOrWhiteSpace(r) ? Enumerable.Repeat(-1L, findingCount) : labeler.Label(r)).ToArray(), [batch.Count, findingCount], device: device);
        var ids = batch.TextIds ?? zeros([batch.Count, 2], ScalarType.Int64, device);
        var mask = batch.TextMask ?? zeros([batch.Count, 2], ScalarType.Int64, device);
        var seed = maskSeeds.GetValue(batch, _ => new StrongBox<ulong>((ulong)randint(0, int.MaxValue, [1], ScalarType.Int64).ToInt64())).Value;
        using var generator = new Generator(seed, device);
        return EncodeRows(batch.Volumes, ids, mask, paired, labels, generator).MoveToOuter(scope);
    }

    /// <inheritdoc />
    public override LossOutput ComputeLoss(FeatureSet features)
    {
        ArgumentNullException.ThrowIfNull(features);
        using var scope = NewDisposeScope();
        var device = features["paired"].device;
        var terms = new List<KeyValuePair<string, Tensor>>();
        var total = zeros([], device: device);
        var paired = features["paired"].nonzero().flatten();
        var count = paired.shape[0];
        if (Weight("contrastive") > 0)
        {
            var term = zeros([], device: device);
            if (count >= 2)
            {
                var image = features["image"].index_select(0, paired);
                var text = features["text"].index_select(0, paired);
                var sigLip = model.Sizes.Contrastive == ColipriContrastive.SigLip;
                var o = losses.Contrastive.forward(new ContrastiveInput(image, text, model.LogitScale(), sigLip ? model.LogitBias : null));
                term = o.Total;
            }

            total = total + (Weight("contrastive") * term);
            terms.Add(new("contrastive", term.detach()));
        }

        if (Weight("report") > 0)
        {
            var term = features["lm_sum"].sum() / features["lm_count"].sum().clamp_min(1);
            total = total + (Weight("report") * term);
            terms.Add(new("report", term.detach()));
        }

        if (Weight("masked_image") > 0)
        {
            var term = features["mim_sum"].sum() / features["mim_count"].sum().clamp_min(1);
            total = total + (Weight("masked_image") * term);
            terms.Add(new("masked_image", term.detach()));
        }

        if (Weight("opposite_sentence") > 0)
        {
            var term = zeros([], device: device);
            var accuracy = zeros([], device: device);
            if (count >= 1)
            {
                var image = features["image"].index_select(0, paired);
                var sentences = model.EncodeText(sentenceIds.to(device), sentenceMask.to(device)).reshape(findingCount, 2, -1);
                var perImage = sentences.unsqueeze(0).expand(count, -1, -1, -1);
                var o = losses.Opposite.forward(new OppositeSentenceInput(image, perImage, features["labels"].index_select(0, paired), model.LogitScale()));
                term = o.Total;
                accuracy = o.Terms["opposite_sentence_accuracy"].detach();
            }

            total = total + (Weight("opposite_sentence") * term);
            terms.Add(new("opposite_sentence", term.detach()));
            terms.Add(new("opposite_sentence_accuracy", accuracy));
        }

        return new LossOutput(total, terms).MoveToOuter(scope);
    }

    /// <summary>Computes every term for one batch outside a <see cref="Trainer"/> (a dispose scope around the call owns the intermediates).</summary>
    /// <param name="batch">The batch.</param>
    /// <param name="generator">Random source of the masked-image-modelling masks (null: libtorch's global generator).</param>
    public LossOutput Compute(ColipriBatch batch, Generator? generator = null)
    {
        ArgumentNullException.ThrowIfNull(batch);
        using var scope = NewDisposeScope();
        using var features = EncodeRows(batch.Volumes, batch.ReportIds, batch.ReportMask, batch.Paired.to(ScalarType.Bool), batch.FindingLabels.to(ScalarType.Int64), generator);
        return ComputeLoss(features).MoveToOuter(scope);
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            sentenceIds.Dispose();
            sentenceMask.Dispose();
        }

        base.Dispose(disposing);
    }

    /// <summary>Per-row features: pooled image and report embeddings of the paired rows (zeros elsewhere), per-row sums
    /// and counts of the report tokens' cross-entropy and of the masked patches' squared error, paired flags and labels.</summary>
    private FeatureSet EncodeRows(Tensor volumes, Tensor ids, Tensor mask, Tensor paired, Tensor labels, Generator? generator)
    {
        using var scope = NewDisposeScope();
        var b = volumes.shape[0];
        var device = volumes.device;
        var rows = paired.nonzero().flatten();
        var e = model.EmbeddingDim;
        var image = zeros([b, e], device: device);
        var text = zeros([b, e], device: device);
        var lmSum = zeros([b], device: device);
        var lmCount = zeros([b], device: device);
        var needsImage = Weight("contrastive") > 0 || Weight("opposite_sentence") > 0 || Weight("report") > 0;
        if (rows.shape[0] > 0 && needsImage)
        {
            var pairedIds = ids.index_select(0, rows);
            var pairedMask = mask.index_select(0, rows);
            var tokens = model.EncodeImageTokens(volumes.index_select(0, rows));
            if (Weight("contrastive") > 0 || Weight("opposite_sentence") > 0)
            {
                image = image.index_copy(0, rows, model.Pool(tokens));
            }

            if (Weight("contrastive") > 0)
            {
                text = text.index_copy(0, rows, model.EncodeText(pairedIds, pairedMask));
            }

            if (Weight("report") > 0)
            {
                // Position t predicts token t + 1; padding is not scored (CausalLanguageModelingLoss's rule, per row).
                var logits = model.ReportLogits(tokens, pairedIds, pairedMask);
                var t = logits.shape[1];
                var targets = model.ToReportVocabulary(pairedIds).masked_fill(pairedMask.eq(0), CausalLanguageModelingLoss.IgnoreIndex).narrow(1, 1, t - 1);
                var perToken = F.cross_entropy(logits.narrow(1, 0, t - 1).reshape(-1, logits.shape[2]), targets.reshape(-1),
                    ignore_index: CausalLanguageModelingLoss.IgnoreIndex, reduction: nn.Reduction.None).reshape(rows.shape[0], t - 1);
                lmSum = lmSum.index_copy(0, rows, perToken.sum(1));
                lmCount = lmCount.index_copy(0, rows, targets.ne(CausalLanguageModelingLoss.IgnoreIndex).sum(1).to(lmSum.dtype));
            }
        }

        Tensor mimSum, mimCount;
        if (Weight("masked_image") > 0)
        {
            var (prediction, target, masked) = model.MaskedImageModeling(volumes, generator);
            var perPatch = (prediction - target.detach()).square().mean([-1]);
            var m = masked.to(perPatch.dtype);
            mimSum = (perPatch * m).sum(1);
            mimCount = m.sum(1);
        }
        else
        {
            mimSum = zeros([b], device: device);
            mimCount = zeros([b], device: device);
        }

        var features = new FeatureSet(
        [
            new("image", image),
            new("text", text),
            new("paired", paired),
            new("labels", labels),
            new("lm_sum", lmSum),
            new("lm_count", lmCount),
            new("mim_sum", mimSum),
            new("mim_count", mimCount),
        ]);
        return features.MoveToOuter(scope);
    }

    private static ColipriModel Checked(VisionLanguageModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return model.Module as ColipriModel
            ?? throw new ArgumentException($"The model is a \"{model.Architecture}\", not a \"{ColipriConfig.ArchitectureName}\".", nameof(model));
    }

    /// <summary>The loss modules as one module (none has parameters: the logit scale and bias belong to the model).</summary>
    private sealed class Losses : nn.Module
    {
#pragma warning disable IDE1006, SA1300 // state-dict names
        private readonly VlpLoss<ContrastiveInput> contrastive;
        private readonly OppositeSentenceLoss opposite_sentence;
#pragma warning restore IDE1006, SA1300

        public Losses(ColipriContrastive kind)
            : base("colipri_objective")
        {
            contrastive = kind == ColipriContrastive.SigLip ? new SigLipLoss() : new ClipLoss();
            opposite_sentence = new OppositeSentenceLoss();
            RegisterComponents();
        }

        public VlpLoss<ContrastiveInput> Contrastive => contrastive;

        public OppositeSentenceLoss Opposite => opposite_sentence;

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                contrastive.Dispose();
                opposite_sentence.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}
