using MedVlp.Losses;
using MedVlp.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Architectures.MedBlip;

/// <summary>
/// MedBLIP's training objective for <see cref="Trainer"/>: each row's report ("EHR text ... The diagnosis is X.") is
/// split into the EHR text and the answer (<see cref="MedBlipText.Batch"/>); the loss is ITC(report) + ITC(question +
/// answer) + LM (<see cref="MedBlipModel.LossFromFeatures"/>). The trainable parameters are the model's (3D embedding,
/// <c>ln_vision</c>, Q-Former, projections, temperature); the EVA blocks and the language model are frozen.
/// </summary>
/// <remarks>
/// <see cref="Encode"/> returns per-example features (<c>image</c>, <c>report</c>, <c>qa</c>) and per-example
/// language-model sums (<c>lm_sum</c>, <c>lm_count</c>), so gradient accumulation is exact: the contrastive terms see the
/// negatives of the whole accumulated batch and the LM term is the mean over all its scored tokens. Batches must carry
/// their reports as text (<see cref="TrainingBatch.Reports"/>, as <see cref="TrainingBatchCollator"/> builds them).
/// </remarks>
public sealed class MedBlipObjective : TrainingObjective
{
    private readonly MedBlipModel _model;

    /// <summary>Creates the objective for a <c>medblip</c> model package.</summary>
    /// <exception cref="ArgumentException">The model is not a MedBLIP.</exception>
    public MedBlipObjective(VisionLanguageModel model)
        : base(Checked(model).Module, new QueryContrastiveLoss())
    {
        _model = (MedBlipModel)model.Module;
        Text = new MedBlipText(model.Tokenizer, _model.MedBlipConfig.MaxTextTokens);
    }

    /// <summary>The texts and tokenizers.</summary>
    public MedBlipText Text { get; }

    /// <inheritdoc />
    public override FeatureSet Encode(TrainingBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var reports = batch.Reports ?? throw new ArgumentException(
            "MedBLIP needs each row's report as text (TrainingBatch.Reports) to split it into EHR text and answer; this batch carries tokens only.", nameof(batch));
        using var scope = NewDisposeScope();
        var tokens = Text.Batch(batch.Volumes, reports);
        var queries = _model.EncodeQueries(tokens.Volumes);
        var (lmSum, lmCount) = _model.LanguageModelTokenLosses(queries, tokens);
        var features = new FeatureSet(
        [
            new("image", _model.ImageFeatures(queries)),
            new("report", _model.TextFeatures(tokens.ReportIds, tokens.ReportMask)),
            new("qa", _model.TextFeatures(tokens.QaIds, tokens.QaMask, questionAnswer: true)),
            new("lm_sum", lmSum),
            new("lm_count", lmCount),
        ]);
        return features.MoveToOuter(scope);
    }

    /// <inheritdoc />
    public override LossOutput ComputeLoss(FeatureSet features)
    {
        ArgumentNullException.ThrowIfNull(features);
        if (features.Count < 2)
        {
            throw new InvalidOperationException($"The contrastive terms need at least two examples per batch; this one has {features.Count}.");
        }

        return _model.LossFromFeatures(features["image"], features["report"], features["qa"], features["lm_sum"], features["lm_count"]);
    }

    private static VisionLanguageModel Checked(VisionLanguageModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return model.Module is MedBlipModel
            ? model
            : throw new ArgumentException($"The model is a \"{model.Architecture}\", not a \"{MedBlipConfig.ArchitectureName}\".", nameof(model));
    }
}
