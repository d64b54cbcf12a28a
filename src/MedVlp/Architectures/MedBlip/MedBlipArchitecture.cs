using MedVlp.Modeling;
using MedVlp.Training;

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

    /// <summary>What recipes need to train it (<c>medvlp train --recipe medblip</c>): one loss, <c>medblip</c> (ITC(report) +
    /// ITC(QA) + LM), trained on reports that end with "The diagnosis is X." (the synthetic cases' EHR text).</summary>
    internal static RecipeArchitecture Recipe { get; } = new(
        MedBlipConfig.ArchitectureName,
        ["medblip"],
        (recipe, tokenizer, seed, device) =>
        {
            var config = recipe.Size == ModelRegistry.Full
                ? MedBlipConfig.Full() with { QFormer = MedBlipConfig.Full().QFormer with { VocabSize = tokenizer.VocabularySize } }
                : MedBlipConfig.Tiny(tokenizer.VocabularySize);
            return VisionLanguageModel.Create(config, tokenizer, TrainingRecipe.Preprocessing(config.InputSize), seed, device);
        },
        (_, model) => new MedBlipObjective(model),
        model => ((MedBlipModel)model.Module).MedBlipConfig.MaxTextTokens,
        example => example.Ehr);
}
