using MedVlp.Distributed;
using MedVlp.Modeling;
using MedVlp.Text;
using MedVlp.Training;
using MedVlp.Volumes;
using MedVlp.Volumes.Transforms;

namespace MedVlp.Architectures.Colipri;

/// <summary>The registry entry of COLIPRI (<c>colipri</c>).</summary>
internal static class ColipriArchitecture
{
    /// <summary>Name, sizes and builder.</summary>
    internal static ModelArchitecture Descriptor { get; } = new(
        ColipriConfig.ArchitectureName,
        typeof(ColipriConfig),
        "COLIPRI: Primus 3D ViT with rotary positions + attention pooling, BERT text encoder, report decoder, masked image modelling, opposite sentences",
        new Dictionary<string, Func<ArchitectureConfig>> { [ModelRegistry.Tiny] = () => ColipriConfig.Tiny(), [ModelRegistry.Full] = () => ColipriConfig.Full() },
        (config, device) => new ColipriModel((ColipriConfig)config, device));
}

/// <summary>
/// What recipes need to train COLIPRI (<c>medvlp train --recipe colipri | colipri-demo</c>): one loss, <c>colipri</c>
/// (<see cref="ColipriObjective"/>: contrastive + report generation + masked image modelling + opposite sentences, with
/// the weights of <see cref="ColipriConfig"/>), finding labels read from the reports with <see cref="ColipriChest.Findings"/>,
/// the <c>colipri</c> preprocessing at the model's input size (<see cref="Preprocessing(int)"/>), and synthetic chest CTs
/// for <c>--synthetic N</c> (a quarter of the training cases image-only; held-out zero-shot AUROC as the evaluation).
/// </summary>
internal sealed class ColipriRecipeArchitecture : RecipeArchitecture
{
    /// <inheritdoc/>
    public override string Name => ColipriConfig.ArchitectureName;

    /// <summary>COLIPRI's recipes: full size (MedVlp's training settings: COLIPRI's are not published) and the CPU-sized demo.</summary>
    public override IReadOnlyList<TrainingRecipe> Recipes { get; } =
    [
        new()
        {
            Name = "colipri",
            Description = "COLIPRI at full size (Primus-M 16 x 864 at 192^3 / 2 mm, BERT-base, 768-d space): contrastive (CLIP) + report generation + masked image modelling + opposite sentences, weights 1, paired and image-only CTs mixed. The training settings are not published: AdamW 1e-4 (betas 0.9/0.98, wd 0.05), 5% warm-up + cosine, clip 1.0, batch 32, 50 epochs are MedVlp's defaults.",
            Architecture = "colipri",
            Size = "full",
            Objectives = [new ObjectiveSettings { Name = "colipri", Loss = "colipri" }],
            Optimizer = new OptimizerSettings { LearningRate = 1e-4, WeightDecay = 0.05 },
            Schedule = new ScheduleSettings { WarmupFraction = 0.05 },
            Epochs = 50,
            Data = new DataSettings { BatchSize = 32 },
        },
        new()
        {
            Name = "colipri-demo",
            Description = "The COLIPRI demo: the tiny COLIPRI (64^3 at 6 mm), all four objectives, AdamW 2e-3 (wd 0.05), 10% warm-up + cosine, clip 5, 800 steps of batch 12.",
            Architecture = "colipri",
            Size = "tiny",
            Objectives = [new ObjectiveSettings { Name = "colipri", Loss = "colipri" }],
            Optimizer = new OptimizerSettings { LearningRate = 2e-3, WeightDecay = 0.05 },
            GradientClipNorm = 5,
            Steps = 800,
            EvaluateEvery = 100,
            BestMetric = "val/zero_shot_macro_auroc",
            HigherIsBetter = true,
            Data = new DataSettings { BatchSize = 12 },
        },
    ];

    /// <inheritdoc/>
    public override IReadOnlyList<string> Losses => ["colipri"];

    /// <summary>COLIPRI starts its text encoder from a pretrained BERT (CXR-BERT); a recipe's <c>text_model</c> (an ONNX
    /// BERT export or a Hugging Face folder, such as all-MiniLM-L6-v2) takes that place, frozen.</summary>
    public override bool TakesTextModel => true;

    /// <inheritdoc/>
    protected override ArchitectureConfig WithTextEncoder(ArchitectureConfig config, BertConfig text)
    {
        var c = (ColipriConfig)config;
        return c with { Text = text, MaxTextTokens = Math.Min(c.MaxTextTokens, text.MaxPositionEmbeddings) };
    }

    /// <inheritdoc/>
    public override IReadOnlyList<string> LossParts => ColipriObjective.Parts;

    /// <summary>
    /// The <c>colipri</c> preset (SAR, 2 mm, HU [-1000, 1000] -> [-1, 1], centred crop or pad to 192^3) at another input
    /// size: the spacing scales so the crop always covers the preset's 384 mm (64^3 at 6 mm for the <c>tiny</c> size).
    /// At 192 it is the preset itself.
    /// </summary>
    /// <param name="inputSize">The model's input edge in voxels.</param>
    public static TransformPipeline Preprocessing(int inputSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(inputSize, 1);
        if (inputSize == 192)
        {
            return TransformPresets.Colipri();
        }

        return new TransformPipeline(
        [
            new Reorient("SAR"),
            new ResampleToSpacing(384.0 / inputSize) { Interpolation = Interpolation.Trilinear, FillWithMinimum = true },
            new Clamp(-1000, 1000),
            new ScaleIntensityRange { InputMin = -1000, InputMax = 1000, OutputMin = -1, OutputMax = 1 },
            new CropOrPad { Size = new VolumeShape(inputSize, inputSize, inputSize), FillValue = 0, Centering = CropOrPadCentering.ExtraBefore },
        ], $"colipri-{inputSize}");
    }

    /// <inheritdoc/>
    public override ArchitectureConfig ModelConfig(string size, int vocabularySize) =>
        size == ModelRegistry.Full ? ColipriConfig.Full(vocabularySize) : ColipriConfig.Tiny(vocabularySize);

    /// <inheritdoc/>
    public override TransformPipeline Preprocessing(ArchitectureConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return Preprocessing(((ColipriConfig)config).Encoder.InputSize);
    }

    /// <inheritdoc/>
    public override ArchitectureConfig AdaptToReports(ArchitectureConfig config, TextTokenizer tokenizer, IReadOnlyList<string> reports)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(reports);
        var c = (ColipriConfig)config;
        if (!c.CorpusReportVocabulary || c.ReportVocabulary is not null)
        {
            return c;
        }

        var unknown = tokenizer is WordPieceTextTokenizer w ? w.Inner.UnknownTokenId : tokenizer.PaddingTokenId;
        return c with { ReportVocabulary = ColipriConfig.CorpusVocabulary(tokenizer, reports.Where(r => !string.IsNullOrWhiteSpace(r)), unknown) };
    }

    /// <inheritdoc/>
    public override SyntheticTrainingSet? CreateSyntheticData(ArchitectureConfig config, TransformPipeline preprocessing, int count, int heldOut, int seed,
        IProgress<int>? progress = null, CancellationToken cancellationToken = default) =>
        ColipriChest.CreateSyntheticSet(preprocessing, count, heldOut, seed, progress: progress, cancellationToken: cancellationToken);

    /// <inheritdoc/>
    public override TrainingObjective CreateObjective(TrainingRecipe recipe, VisionLanguageModel model, ProcessGroup? group)
    {
        if (group is { WorldSize: > 1 })
        {
            throw new NotSupportedException($"Recipe \"{recipe?.Name}\": COLIPRI trains in one process; data-parallel training is offered for clip3d.");
        }

        ArgumentNullException.ThrowIfNull(recipe);
        ArgumentNullException.ThrowIfNull(model);
        if (recipe.TextModel is not null)
        {
            // A pretrained text model stays as it is: frozen (requires_grad false, eval), run once per distinct text (the
            // cache); the text projection after it trains.
            var m = (ColipriModel)model.Module;
            m.Freeze(ColipriModel.TextComponent);
            m.CacheFrozenTextOutputs = true;
        }

        return new ColipriObjective(model, ColipriChest.Findings);
    }
}
