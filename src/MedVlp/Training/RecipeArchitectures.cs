using System.Collections.Concurrent;
using MedVlp.Modeling;
using MedVlp.Synthetic;
using MedVlp.Text;
using TorchSharp;

namespace MedVlp.Training;

/// <summary>
/// What <see cref="TrainingRecipe"/> needs to train an architecture other than the built-in <c>clip3d</c>: the losses a
/// recipe may name, how a size becomes a model and how a model becomes the objective. Architectures register one
/// (<see cref="RecipeArchitectures.Register"/>), so this layer never names a paper.
/// </summary>
/// <param name="Name">The architecture's registry name (a recipe's <c>architecture</c>).</param>
/// <param name="Losses">The objective losses a recipe may name for it (its single objective's <c>loss</c>).</param>
/// <param name="CreateModel">Builds the model of a recipe's size over a tokenizer (fresh weights from the seed, on the device).</param>
/// <param name="CreateObjective">Builds the training objective of a model.</param>
/// <param name="MaxTextTokens">The longest tokenized report of a model (the batch collator's limit).</param>
/// <param name="SyntheticReport">The text of a synthetic case this architecture trains on (for <c>medvlp train --synthetic</c>).</param>
public sealed record RecipeArchitecture(
    string Name,
    IReadOnlyList<string> Losses,
    Func<TrainingRecipe, TextTokenizer, int, torch.Device?, VisionLanguageModel> CreateModel,
    Func<TrainingRecipe, VisionLanguageModel, TrainingObjective> CreateObjective,
    Func<VisionLanguageModel, int> MaxTextTokens,
    Func<SyntheticBrainCase, string> SyntheticReport);

/// <summary>The architectures recipes can train besides <c>clip3d</c>. Thread-safe.</summary>
public static class RecipeArchitectures
{
    private static readonly ConcurrentDictionary<string, RecipeArchitecture> Entries = new(StringComparer.Ordinal);

    /// <summary>The registered names.</summary>
    public static IReadOnlyList<string> Names => [.. Entries.Keys.Order(StringComparer.Ordinal)];

    /// <summary>Registers (or replaces) an architecture's recipe support.</summary>
    public static void Register(RecipeArchitecture architecture)
    {
        ArgumentNullException.ThrowIfNull(architecture);
        ArgumentException.ThrowIfNullOrWhiteSpace(architecture.Name);
        Entries[architecture.Name] = architecture;
    }

    /// <summary>The recipe support of an architecture, or null.</summary>
    public static RecipeArchitecture? Find(string name) => name is null ? null : Entries.GetValueOrDefault(name);
}
