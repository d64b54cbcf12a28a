using MedVlp.Losses;
using MedVlp.Text;
using TorchSharp;
using static TorchSharp.torch;

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
public sealed record ColipriBatch(Tensor Volumes, Tensor ReportIds, Tensor ReportMask, Tensor Paired, Tensor FindingLabels)
{
    /// <summary>A batch of image-only volumes (no reports: every row unpaired, empty report and label columns).</summary>
    /// <param name="volumes">B x 1 x S x S x S preprocessed volumes.</param>
    public static ColipriBatch ImageOnly(Tensor volumes)
    {
        ArgumentNullException.ThrowIfNull(volumes);
        var b = volumes.shape[0];
        return new ColipriBatch(volumes, zeros([b, 1], ScalarType.Int64, volumes.device), zeros([b, 1], ScalarType.Int64, volumes.device),
            zeros([b], ScalarType.Bool, volumes.device), zeros([b, 0], ScalarType.Int64, volumes.device));
    }
}

/// <summary>
/// COLIPRI's objectives composed in one loss: contrastive image-report (CLIP or SigLIP), report generation (teacher-forced
/// language modelling of the report from the image tokens), masked image modelling (every volume, paired or not) and
/// opposite sentences (<see cref="OppositeSentenceLoss"/> against the labeler's findings), each with its configured weight
/// (a term whose weight is 0 is not computed).
/// </summary>
public sealed class ColipriObjective : IDisposable
{
    private readonly ColipriModel model;
    private readonly VlpLoss<ContrastiveInput>? contrastive;
    private readonly CausalLanguageModelingLoss languageModeling = new();
    private readonly MaskedPatchReconstructionLoss maskedImage = new();
    private readonly OppositeSentenceLoss opposite = new();
    private readonly Tensor? sentenceIds;
    private readonly Tensor? sentenceMask;
    private readonly int findingCount;
    private readonly bool imageOnly;

    /// <summary>Creates the objective.</summary>
    /// <param name="model">The model being trained.</param>
    /// <param name="tokenizer">The report tokenizer (for the opposite sentences).</param>
    /// <param name="findings">The findings whose opposite sentences are scored (label order of <see cref="ColipriBatch.FindingLabels"/>).</param>
    public ColipriObjective(ColipriModel model, TextTokenizer tokenizer, IReadOnlyList<FindingDefinition> findings)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(findings);
        this.model = model;
        contrastive = model.Sizes.Contrastive == ColipriContrastive.SigLip ? new SigLipLoss() : new ClipLoss();
        findingCount = findings.Count;
        var sentences = findings.SelectMany(f => new[] { f.Affirmative, f.Negated }).ToArray();
        var encoded = tokenizer.EncodeBatch(sentences, model.Sizes.MaxTextTokens);
        sentenceIds = tensor(encoded.Ids.ToArray(), [encoded.BatchSize, encoded.SequenceLength]).DetachFromDisposeScope();
        sentenceMask = tensor(encoded.AttentionMask.ToArray(), [encoded.BatchSize, encoded.SequenceLength]).DetachFromDisposeScope();
    }

    private ColipriObjective(ColipriModel model)
    {
        this.model = model;
        imageOnly = true;
    }

    /// <summary>
    /// Masked image modelling alone, for image-only pre-training: no tokenizer, no findings, and the text terms are never
    /// computed (paired rows train by masked image modelling too, whatever the text weights say).
    /// </summary>
    /// <param name="model">The model being trained (its <see cref="ColipriConfig.MaskedImageWeight"/> must be above 0).</param>
    /// <exception cref="ArgumentException">The model's masked-image weight is 0.</exception>
    public static ColipriObjective MaskedImageOnly(ColipriModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (!(model.Sizes.MaskedImageWeight > 0))
        {
            throw new ArgumentException($"A masked-image-only objective needs masked_image_weight above 0, found {model.Sizes.MaskedImageWeight}.", nameof(model));
        }

        return new ColipriObjective(model);
    }

    /// <summary>Whether this objective trains by masked image modelling alone (<see cref="MaskedImageOnly"/>).</summary>
    public bool IsMaskedImageOnly => imageOnly;

    /// <summary>Computes every term for a batch (a dispose scope around the call owns the intermediates).</summary>
    /// <param name="batch">The batch.</param>
    /// <param name="generator">Random source of the masked-image-modelling masks.</param>
    public LossOutput Compute(ColipriBatch batch, Generator? generator = null)
    {
        ArgumentNullException.ThrowIfNull(batch);
        using var scope = NewDisposeScope();
        var c = model.Sizes;
        var terms = new List<KeyValuePair<string, Tensor>>();
        var total = zeros([], device: batch.Volumes.device);
        var paired = batch.Paired.nonzero().flatten();
        if (!imageOnly && paired.shape[0] >= 2)
        {
            var volumes = batch.Volumes.index_select(0, paired);
            var ids = batch.ReportIds.index_select(0, paired);
            var mask = batch.ReportMask.index_select(0, paired);
            var tokens = model.EncodeImageTokens(volumes);
            var image = model.Pool(tokens);
            var scale = model.LogitScale();
            if (c.ContrastiveWeight > 0)
            {
                var text = model.EncodeText(ids, mask);
                using var o = contrastive!.forward(new ContrastiveInput(image, text, scale, c.Contrastive == ColipriContrastive.SigLip ? model.LogitBias : null));
                total = total + (c.ContrastiveWeight * o.Total);
                terms.Add(new("contrastive", o.Total.detach()));
            }

            if (c.ReportWeight > 0)
            {
                var labels = model.ToReportVocabulary(ids).masked_fill(mask.eq(0), CausalLanguageModelingLoss.IgnoreIndex);
                using var o = languageModeling.forward(new LanguageModelingInput(model.ReportLogits(tokens, ids, mask), labels));
                total = total + (c.ReportWeight * o.Total);
                terms.Add(new("report", o.Total.detach()));
            }

            if (c.OppositeSentenceWeight > 0)
            {
                var sentences = model.EncodeText(sentenceIds!.to(batch.Volumes.device), sentenceMask!.to(batch.Volumes.device)).reshape(findingCount, 2, -1);
                var perImage = sentences.unsqueeze(0).expand(paired.shape[0], -1, -1, -1);
                using var o = opposite.forward(new OppositeSentenceInput(image, perImage, batch.FindingLabels.index_select(0, paired), scale));
                total = total + (c.OppositeSentenceWeight * o.Total);
                terms.Add(new("opposite_sentence", o.Total.detach()));
            }
        }

        if (c.MaskedImageWeight > 0)
        {
            var (prediction, target, masked) = model.MaskedImageModeling(batch.Volumes, generator);
            using var o = maskedImage.forward(new MaskedPatchInput(prediction, target, masked));
            total = total + (c.MaskedImageWeight * o.Total);
            terms.Add(new("masked_image", o.Total.detach()));
        }

        return new LossOutput(total, terms).MoveToOuter(scope);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        sentenceIds?.Dispose();
        sentenceMask?.Dispose();
        contrastive?.Dispose();
        languageModeling.Dispose();
        maskedImage.Dispose();
        opposite.Dispose();
    }
}
