using MedVlp.Architectures.MFlag;
using MedVlp.Distributed;
using MedVlp.Modeling;
using MedVlp.Text;
using MedVlp.Training;
using MedVlp.Volumes.Transforms;

namespace MedVlp.Architectures.Prior;

/// <summary>
/// PRIOR for <see cref="TrainingRecipe"/> (<c>architecture: "prior"</c> on 2D images, X-rays or the middle axial slice of
/// a volume; <c>"prior3d"</c> on whole volumes with the 3D variant), loss <c>prior</c>, whose stages weight the eight parts
/// of <see cref="PriorLossWeights.Names"/>. It brings the recipes <c>prior</c> and <c>prior3d</c> (CPU-sized) and
/// <c>prior-full</c> and <c>prior3d-full</c> (the released schedule, <see cref="PriorRecipe"/>).
/// </summary>
internal sealed class PriorRecipeArchitecture(bool volumes) : RecipeArchitecture
{
    /// <summary>The name of the 3D recipe architecture.</summary>
    public const string VolumeName = "prior3d";

    public override string Name => volumes ? VolumeName : PriorConfig.ArchitectureName;

    public override IReadOnlyList<string> Losses => ["prior"];

    public override IReadOnlyList<string> LossParts => PriorLossWeights.Names;

    public override IReadOnlyList<TrainingRecipe> Recipes => [PriorRecipe.Recipe(PriorRecipeSize.Tiny, volumes), PriorRecipe.Recipe(PriorRecipeSize.Full, volumes)];

    public override ArchitectureConfig ModelConfig(string size, int vocabularySize) => size == ModelRegistry.Full
        ? PriorConfig.Full(vocabularySize) with { Image = PriorConfig.Full().Image with { SpatialDims = volumes ? 3 : 2 } }
        : PriorRecipe.TinyConfig(vocabularySize, volumes);

    public override ArchitectureConfig ModelConfig(string size, TextTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        return (PriorConfig)ModelConfig(size, tokenizer.VocabularySize) with { SentenceEndTokenIds = PriorConfig.SentenceEnds(tokenizer) };
    }

    public override TransformPipeline Preprocessing(ArchitectureConfig config)
    {
        var c = (PriorConfig)config;
        return c.Image.SpatialDims == 3 ? TrainingRecipe.Preprocessing(c.ImageSize) : Slices.Pipeline(c.ImageSize, c.Image.InChannels, "prior");
    }

    public override TrainingObjective CreateObjective(TrainingRecipe recipe, VisionLanguageModel model, ProcessGroup? group)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (group is { WorldSize: > 1 })
        {
            throw new NotSupportedException($"Recipe \"{recipe?.Name}\": PRIOR trains in one process here (its global InfoNCE sees the local batch); data-parallel training is offered for clip3d.");
        }

        return new PriorObjective((PriorModel)model.Module, model.Tokenizer);
    }
}
