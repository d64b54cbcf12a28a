using MedVlp.Distributed;
using MedVlp.Modeling;
using MedVlp.Synthetic;
using MedVlp.Training;
using MedVlp.Volumes.Transforms;

namespace MedVlp.Architectures.MedBlip;

/// <summary>The registry entry of MedBLIP (<c>medblip</c>).</summary>
internal static class MedBlipArchitecture
{
    /// <summary>Name, sizes and builder.</summary>
    internal static ModelArchitecture Descriptor { get; } = new(
        MedBlipConfig.ArchitectureName,
        typeof(MedBlipConfig),
        "MedBLIP: 3D patch embedding + frozen EVA ViT, MedQFormer (BLIP-2 Q-Former), ITC, frozen GPT-2-layout language model",
        new Dictionary<string, Func<ArchitectureConfig>> { [ModelRegistry.Tiny] = () => MedBlipConfig.Tiny(), [ModelRegistry.Full] = MedBlipConfig.Full },
        (config, device) => new MedBlipModel((MedBlipConfig)config, device));
}

/// <summary>What recipes need to train MedBLIP (<c>medvlp train --recipe medblip</c>): one loss, <c>medblip</c> (ITC(report) +
/// ITC(QA) + LM), trained on reports that end with "The diagnosis is X." (the synthetic cases' EHR text).</summary>
internal sealed class MedBlipRecipeArchitecture : RecipeArchitecture
{
    /// <inheritdoc/>
    public override string Name => MedBlipConfig.ArchitectureName;

    /// <summary>MedBLIP's recipes: as released (full size) and the CPU-sized demo.</summary>
    public override IReadOnlyList<TrainingRecipe> Recipes { get; } =
    [
        new()
        {
            Name = "medblip",
            Description = "MedBLIP as released: full size, ITC(report) + ITC(QA) + LM, AdamW 2e-5 (betas 0.9/0.999, decay 1e-4), cosine with 10% warm-up, clip 1.0, batch 7, 100 epochs; reports end with \"The diagnosis is X.\".",
            Architecture = "medblip",
            Size = "full",
            Objectives = [new ObjectiveSettings { Name = "medblip", Loss = "medblip" }],
            Optimizer = new OptimizerSettings { LearningRate = 2e-5, WeightDecay = 1e-4, Beta2 = 0.999, Epsilon = 1e-8 },
            Epochs = 100,
            Data = new DataSettings { BatchSize = 7 },
        },
        new()
        {
            Name = "medblip-demo",
            Description = "The MedBLIP demo: the tiny MedBLIP, the same losses at AdamW 1e-3 (decay 1e-4), cosine with 10% warm-up, clip 1.0, 400 steps of batch 24.",
            Architecture = "medblip",
            Size = "tiny",
            Objectives = [new ObjectiveSettings { Name = "medblip", Loss = "medblip" }],
            Optimizer = new OptimizerSettings { LearningRate = 1e-3, WeightDecay = 1e-4, Beta2 = 0.999, Epsilon = 1e-8 },
            Steps = 400,
            Data = new DataSettings { BatchSize = 24 },
        },
    ];

    /// <inheritdoc/>
    public override IReadOnlyList<string> Losses => ["medblip"];

    /// <inheritdoc/>
    public override ArchitectureConfig ModelConfig(string size, int vocabularySize) => size == ModelRegistry.Full
        ? MedBlipConfig.Full() with { QFormer = MedBlipConfig.Full().QFormer with { VocabSize = vocabularySize } }
        : MedBlipConfig.Tiny(vocabularySize);

    /// <inheritdoc/>
    public override TransformPipeline Preprocessing(ArchitectureConfig config) => TrainingRecipe.Preprocessing(((MedBlipConfig)config).InputSize);

    /// <inheritdoc/>
    public override int MaxTextTokens(VisionLanguageModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return ((MedBlipModel)model.Module).MedBlipConfig.MaxTextTokens;
    }

    /// <inheritdoc/>
    public override string SyntheticReport(SyntheticBrainCase example)
    {
        ArgumentNullException.ThrowIfNull(example);
        return example.Ehr;
    }

    /// <inheritdoc/>
    public override TrainingObjective CreateObjective(TrainingRecipe recipe, VisionLanguageModel model, ProcessGroup? group)
    {
        if (group is { WorldSize: > 1 })
        {
            throw new NotSupportedException($"Recipe \"{recipe?.Name}\": MedBLIP trains in one process; data-parallel training is offered for clip3d.");
        }

        ArgumentNullException.ThrowIfNull(model);
        return new MedBlipObjective(model);
    }
}
