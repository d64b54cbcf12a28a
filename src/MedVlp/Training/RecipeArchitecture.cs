using System.Diagnostics.CodeAnalysis;
using MedVlp.Modeling;
using MedVlp.Volumes.Transforms;

namespace MedVlp.Training;

/// <summary>
/// What <see cref="TrainingRecipe"/> needs to train an architecture other than the built-in <c>clip3d</c>: its model
/// configuration per size, its deterministic preprocessing, its objectives and how many augmented views an example
/// needs. Each paper registers its own (<see cref="RecipeArchitectures.Register"/>) from its folder, so the training layer
/// never names a paper.
/// </summary>
public abstract class RecipeArchitecture
{
    /// <summary>The registry name of the architecture (the recipe's <c>architecture</c>).</summary>
    public abstract string Name { get; }

    /// <summary>The loss names a recipe's objectives may use (the first is the default).</summary>
    public abstract IReadOnlyList<string> Losses { get; }

    /// <summary>Whether training needs a report per example (image-only self-supervision does not).</summary>
    public virtual bool NeedsReports => true;

    /// <summary>Augmented views per example: 1, or 2 for two-view self-supervision (the batch's <see cref="TrainingBatch.SecondViews"/>).</summary>
    public virtual int Views => 1;

    /// <summary>The model configuration of a recipe size (<c>tiny</c>, <c>full</c>, or <c>test</c> as tiny) over a vocabulary.</summary>
    public abstract ArchitectureConfig ModelConfig(string size, int vocabularySize);

    /// <summary>The model configuration of a recipe size for a tokenizer (what <see cref="TrainingRecipe.CreateModel(MedVlp.Text.TextTokenizer?, int?, TorchSharp.torch.Device?, IReadOnlyList{string}?)"/> uses):
    /// by default <see cref="ModelConfig(string, int)"/> over its vocabulary; an architecture that stores token ids in its
    /// configuration (PRIOR's sentence ends) overrides it.</summary>
    public virtual ArchitectureConfig ModelConfig(string size, MedVlp.Text.TextTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        return ModelConfig(size, tokenizer.VocabularySize);
    }

    /// <summary>The loss parts a stage of a recipe may weight besides the objectives' names (PRIOR's eight terms); empty by default.</summary>
    public virtual IReadOnlyList<string> LossParts => [];

    /// <summary>The built-in recipes of this architecture, listed by <c>medvlp train --list</c> after the shipped ones.</summary>
    public virtual IReadOnlyList<TrainingRecipe> Recipes => [];

    /// <summary>Whether the architecture's frozen language model can be a pretrained BERT read from files (the recipe's
    /// <see cref="TrainingRecipe.TextModel"/>; M-FLAG: yes).</summary>
    public virtual bool TakesTextModel => false;

    /// <summary>The model configuration of a recipe size whose text encoder has <paramref name="textModel"/>'s sizes
    /// (the text projector then takes its width). Only called when <see cref="TakesTextModel"/>.</summary>
    public virtual ArchitectureConfig ModelConfig(string size, Backbones.PretrainedBert textModel)
    {
        ArgumentNullException.ThrowIfNull(textModel);
        return TakesTextModel ? WithTextEncoder(ModelConfig(size, textModel.Config.VocabSize), textModel.Config)
            : throw new NotSupportedException($"Architecture \"{Name}\" takes no pretrained text model.");
    }

    /// <summary><paramref name="config"/> with <paramref name="text"/> as its text encoder's sizes (and its text length
    /// capped at the encoder's positions). Architectures that <see cref="TakesTextModel"/> override it.</summary>
    protected virtual ArchitectureConfig WithTextEncoder(ArchitectureConfig config, BertConfig text) =>
        throw new NotSupportedException($"Architecture \"{Name}\" takes no pretrained text model.");

    /// <summary>Copies <paramref name="textModel"/>'s weights into <paramref name="model"/>'s text encoder (built from
    /// <see cref="ModelConfig(string, Backbones.PretrainedBert)"/>); a partial fit fails with the file and what did not
    /// fit. The model's weight fingerprints are cleared, as caches of frozen text outputs are keyed by them. Only called
    /// when <see cref="TakesTextModel"/>.</summary>
    /// <exception cref="Serialization.ModelFormatException">The weights do not fit the text encoder.</exception>
    public virtual void LoadTextModel(VisionLanguageModel model, Backbones.PretrainedBert textModel)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(textModel);
        if (!TakesTextModel || model.Module is not (CompositeModel composite and IBertTextEncoderModel m))
        {
            throw new NotSupportedException($"Architecture \"{Name}\" takes no pretrained text model.");
        }

        var report = textModel.LoadInto(m.TextEncoder);
        if (!report.IsComplete)
        {
            throw new Serialization.ModelFormatException(textModel.Path, null, $"does not fit {Name}'s {m.TextEncoderComponent}: {report.Describe()}.");
        }

        composite.ClearFingerprints();
    }

    /// <summary>The deterministic preprocessing from any volume or image to the model's input (stored with the model).</summary>
    public abstract TransformPipeline Preprocessing(ArchitectureConfig config);

    /// <summary>The random transforms that make each view (applied before <see cref="Preprocessing"/>'s resize, or to the
    /// preprocessed image), or null for none. Recipes override it with <see cref="DataSettings.Augmentation"/>.</summary>
    public virtual TransformPipeline? DefaultAugmentation(ArchitectureConfig config) => null;

    /// <summary>The longest tokenized text the collator keeps for <paramref name="model"/> (default: the dual encoder's
    /// limit, 2 tokens for image-only models).</summary>
    public virtual int MaxTextTokens(VisionLanguageModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return (model.Module as IDualEncoder)?.MaxTextTokens ?? 2;
    }

    /// <summary>The text a synthetic brain case contributes (default: its report).</summary>
    public virtual string SyntheticReport(Synthetic.SyntheticBrainCase example)
    {
        ArgumentNullException.ThrowIfNull(example);
        return example.Report;
    }

    /// <summary>
    /// The synthetic data of <c>medvlp train --synthetic N</c> for this architecture, or null (the default) for the
    /// built-in synthetic brain MRIs with <see cref="SyntheticReport"/>.
    /// </summary>
    /// <param name="config">The model configuration.</param>
    /// <param name="preprocessing">The model's preprocessing (the returned volumes have been through it).</param>
    /// <param name="count">Training examples.</param>
    /// <param name="heldOut">Held-out examples.</param>
    /// <param name="seed">The dataset seed.</param>
    /// <param name="progress">Receives the number of examples made so far.</param>
    /// <param name="cancellationToken">Stops the generation.</param>
    public virtual SyntheticTrainingSet? CreateSyntheticData(ArchitectureConfig config, TransformPipeline preprocessing, int count, int heldOut, int seed,
        IProgress<int>? progress = null, CancellationToken cancellationToken = default) => null;

    /// <summary>The model configuration adapted to the training reports before the model is built (default: unchanged).
    /// A small model may, for example, restrict its report decoder to the corpus's tokens.</summary>
    /// <param name="config">The configuration of the recipe's size.</param>
    /// <param name="tokenizer">The report tokenizer.</param>
    /// <param name="reports">The training reports (empty strings for image-only examples).</param>
    public virtual ArchitectureConfig AdaptToReports(ArchitectureConfig config, Text.TextTokenizer tokenizer, IReadOnlyList<string> reports) => config;

    /// <summary>The objective of <paramref name="recipe"/> for <paramref name="model"/>.</summary>
    public abstract TrainingObjective CreateObjective(TrainingRecipe recipe, VisionLanguageModel model, Distributed.ProcessGroup? group);
}

/// <summary>The recipe architectures besides <c>clip3d</c>, by name. Thread-safe.</summary>
public static class RecipeArchitectures
{
    private static readonly Lock Gate = new();
    private static readonly Dictionary<string, RecipeArchitecture> ByName = new(StringComparer.Ordinal);

    /// <summary>The registered names, sorted.</summary>
    public static IReadOnlyList<string> Names
    {
        get
        {
            lock (Gate)
            {
                return [.. ByName.Keys.Order(StringComparer.Ordinal)];
            }
        }
    }

    /// <summary>The built-in recipes of every registered architecture (<see cref="RecipeArchitecture.Recipes"/>), by architecture name.</summary>
    public static IReadOnlyList<TrainingRecipe> Recipes
    {
        get
        {
            lock (Gate)
            {
                return [.. ByName.OrderBy(kv => kv.Key, StringComparer.Ordinal).SelectMany(kv => kv.Value.Recipes)];
            }
        }
    }

    /// <summary>Registers (or replaces) a recipe architecture.</summary>
    public static void Register(RecipeArchitecture architecture)
    {
        ArgumentNullException.ThrowIfNull(architecture);
        ArgumentException.ThrowIfNullOrWhiteSpace(architecture.Name);
        if (architecture.Views is not (1 or 2) || architecture.Losses.Count == 0)
        {
            throw new ArgumentException($"Recipe architecture \"{architecture.Name}\" needs 1 or 2 views and at least one loss.", nameof(architecture));
        }

        lock (Gate)
        {
            ByName[architecture.Name] = architecture;
        }
    }

    /// <summary>Looks a recipe architecture up.</summary>
    public static bool TryGet(string name, [NotNullWhen(true)] out RecipeArchitecture? architecture)
    {
        ArgumentNullException.ThrowIfNull(name);
        lock (Gate)
        {
            return ByName.TryGetValue(name, out architecture);
        }
    }
}
