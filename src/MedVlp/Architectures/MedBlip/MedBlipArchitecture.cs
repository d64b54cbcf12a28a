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
