using System.Text.Json;
using System.Text.Json.Serialization;
using MedVlp.Losses;
using MedVlp.Modeling;
using MedVlp.Text;
using MedVlp.Volumes;
using MedVlp.Volumes.Transforms;
using TorchSharp;

namespace MedVlp.Training;

/// <summary>
/// A named, JSON-serialisable training configuration: architecture and size, objectives and their weights, optimizer,
/// schedule, stages and data settings. <see cref="BuiltIn"/> lists the shipped recipes (<c>medvlp train --list</c>);
/// <see cref="Load"/> reads your own (<c>--recipe path/to/recipe.json</c>), with snake_case field names.
/// </summary>
public sealed record TrainingRecipe
{
    /// <summary>The JSON options of recipe files (snake_case; unknown fields are errors).</summary>
    public static JsonSerializerOptions JsonOptions { get; } = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
    };

    /// <summary>The recipe's name.</summary>
    public string Name { get; init; } = "custom";

    /// <summary>One line about it.</summary>
    public string Description { get; init; } = "";

    /// <summary>The architecture: <c>clip3d</c> (a 3D ViT + BERT dual encoder) or a registered recipe architecture
    /// (<see cref="RecipeArchitectures"/>: <c>mflag</c>, <c>lvmmed</c>, ...).</summary>
    public string Architecture { get; init; } = "clip3d";

    /// <summary>The size: the registry's <c>tiny</c> (the demo's) or <c>full</c>, or <c>test</c> (16^3 input, seconds per epoch).</summary>
    public string Size { get; init; } = "tiny";

    /// <summary>A pretrained frozen text encoder for architectures that take one (<c>mflag</c>): an <c>.onnx</c> BERT export
    /// (vocab.txt beside it) or a Hugging Face BERT folder (config.json, weights, vocab.txt), read by
    /// <see cref="Backbones.PretrainedBert"/>; its vocabulary becomes the model's tokenizer and the text projector takes its
    /// width. Relative paths are from the working directory. Null: the architecture's own, randomly initialised, text encoder.</summary>
    public string? TextModel { get; init; }

    /// <summary>The losses and their weights (a composite when there are several).</summary>
    public IReadOnlyList<ObjectiveSettings> Objectives { get; init; } = [new ObjectiveSettings()];

    /// <summary>The optimizer.</summary>
    public OptimizerSettings Optimizer { get; init; } = new();

    /// <summary>The learning-rate schedule.</summary>
    public ScheduleSettings Schedule { get; init; } = new();

    /// <summary>Largest global gradient norm; 0 disables clipping.</summary>
    public double GradientClipNorm { get; init; } = 1.0;

    /// <summary>Micro-batches per optimisation step.</summary>
    public int AccumulationSteps { get; init; } = 1;

    /// <summary>EMA decay of the weights, or null.</summary>
    public double? EmaDecay { get; init; }

    /// <summary>Epochs (when <see cref="Steps"/> is 0 and there are no stages).</summary>
    public int Epochs { get; init; } = 10;

    /// <summary>Optimisation steps; 0 to use <see cref="Epochs"/>.</summary>
    public long Steps { get; init; }

    /// <summary>Stages with their own peak learning rates and loss weights; empty for one stage.</summary>
    public IReadOnlyList<StageSettings> Stages { get; init; } = [];

    /// <summary>Data settings.</summary>
    public DataSettings Data { get; init; } = new();

    /// <summary>The run seed (weights, order, augmentation, dropout).</summary>
    public int Seed { get; init; } = 42;

    /// <summary>Checkpoint interval in steps (0: at the end only).</summary>
    public int CheckpointEvery { get; init; }

    /// <summary>Checkpoints kept besides the best.</summary>
    public int KeepLastCheckpoints { get; init; } = 2;

    /// <summary>Evaluation interval in steps (0: at the end only).</summary>
    public int EvaluateEvery { get; init; }

    /// <summary>The metric of the best checkpoint and of early stopping.</summary>
    public string BestMetric { get; init; } = "val/loss";

    /// <summary>Whether a larger metric is better.</summary>
    public bool HigherIsBetter { get; init; }

    /// <summary>Evaluations without improvement before stopping; 0 never stops early.</summary>
    public int EarlyStoppingPatience { get; init; }

    /// <summary>The shipped recipes, then those the registered architectures bring (<see cref="RecipeArchitecture.Recipes"/>).</summary>
    public static IReadOnlyList<TrainingRecipe> BuiltIn => [.. Shipped, .. RecipeArchitectures.Recipes];

    private static IReadOnlyList<TrainingRecipe> Shipped { get; } =
    [
        new()
        {
            Name = "clip3d-demo",
            Description = "The demo: the tiny clip3d (3D ViT + BERT), CLIP InfoNCE, AdamW 1e-3, warm-up + cosine, 16 epochs of batch 32 (MedBLIP-style preprocessing at 32^3).",
            Size = "tiny",
            Epochs = 16,
            Data = new DataSettings { BatchSize = 32, SentenceSubsetProbability = 0.5 },
        },
        new()
        {
            Name = "clip3d-test",
            Description = "A very small CLIP model (16^3 input) for tests and smoke runs: seconds per epoch on a CPU.",
            Size = "test",
            Epochs = 2,
            Data = new DataSettings { BatchSize = 8, SentenceSubsetProbability = 0.5 },
        },
        new()
        {
            Name = "clip3d-siglip-staged",
            Description = "Two stages in PRIOR's manner: CLIP alone, then CLIP + SigLIP (learnable logit bias in the loss) at half the learning rate.",
            Size = "tiny",
            Objectives = [new ObjectiveSettings { Name = "clip", Loss = "clip" }, new ObjectiveSettings { Name = "siglip", Loss = "siglip", Weight = 0 }],
            Stages =
            [
                new StageSettings { Name = "clip", Epochs = 6, LossWeights = new Dictionary<string, double> { ["clip"] = 1, ["siglip"] = 0 } },
                new StageSettings { Name = "clip+siglip", Epochs = 6, LearningRate = 5e-4, LossWeights = new Dictionary<string, double> { ["clip"] = 1, ["siglip"] = 1 } },
            ],
            Data = new DataSettings { BatchSize = 32, SentenceSubsetProbability = 0.5 },
        },
        new()
        {
            Name = "clip3d-sgdr",
            Description = "M-FLAG's schedule on the clip3d model: AdamW 2e-5-style decay 0.05 with cosine warm restarts (cycles of 100 steps, doubling).",
            Size = "tiny",
            Epochs = 12,
            Schedule = new ScheduleSettings { Type = "cosine_restarts", FirstCycle = 100, CycleMultiplier = 2 },
            Data = new DataSettings { BatchSize = 32, SentenceSubsetProbability = 0.5 },
        },
    ];

    /// <summary>A built-in recipe by name, or a recipe file when <paramref name="nameOrPath"/> ends in <c>.json</c> or is a file.</summary>
    /// <exception cref="RecipeFormatException">The file is not a valid recipe (the message names the field).</exception>
    /// <exception cref="KeyNotFoundException">No built-in recipe has that name.</exception>
    public static TrainingRecipe Resolve(string nameOrPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(nameOrPath);
        if (nameOrPath.EndsWith(".json", StringComparison.OrdinalIgnoreCase) || File.Exists(nameOrPath))
        {
            return Load(nameOrPath);
        }

        return BuiltIn.FirstOrDefault(r => r.Name == nameOrPath)
            ?? throw new KeyNotFoundException($"No recipe named \"{nameOrPath}\"; built-in: {string.Join(", ", BuiltIn.Select(r => r.Name))} (or pass a .json file).");
    }

    /// <summary>Reads and validates a recipe file.</summary>
    /// <exception cref="RecipeFormatException">The file is not a valid recipe (the message names the field).</exception>
    public static TrainingRecipe Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"The recipe file {path} does not exist.", path);
        }

        TrainingRecipe recipe;
        try
        {
            recipe = JsonSerializer.Deserialize<TrainingRecipe>(File.ReadAllText(path), JsonOptions) ?? throw new RecipeFormatException(path, "$", "the file holds null");
        }
        catch (JsonException ex)
        {
            var problem = ex.Message.Split(" Path:", 2)[0].Split(". LineNumber", 2)[0];
            throw new RecipeFormatException(path, ex.Path ?? "$", $"{problem} (line {ex.LineNumber + 1})", ex);
        }

        recipe.Validate(path);
        return recipe;
    }

    /// <summary>The recipe as JSON.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    /// <summary>Checks every field; throws for the first bad one.</summary>
    /// <param name="source">The file name for the message.</param>
    /// <exception cref="RecipeFormatException">A field is invalid.</exception>
    public void Validate(string source = "recipe")
    {
        void Fail(string field, string message) => throw new RecipeFormatException(source, field, message);
        RecipeArchitecture? plugin = null;
        if (Architecture != "clip3d" && !RecipeArchitectures.TryGet(Architecture ?? "", out plugin))
        {
            Fail("architecture", $"unknown architecture \"{Architecture}\"; available: clip3d, {string.Join(", ", RecipeArchitectures.Names)}");
        }

        var losses = plugin?.Losses ?? ["clip", "siglip"];
        if (TextModel is not null && (TextModel.Trim().Length == 0 || plugin is not { TakesTextModel: true }))
        {
            Fail("text_model", TextModel.Trim().Length == 0 ? "is empty; give an .onnx file or a Hugging Face BERT folder, or leave it out"
                : $"{Architecture} takes no pretrained text model (architectures that do: {string.Join(", ", RecipeArchitectures.Names.Where(n => RecipeArchitectures.TryGet(n, out var a) && a.TakesTextModel))})");
        }

        if (plugin is null ? Size is not ("test" or ModelRegistry.Tiny or ModelRegistry.Full) : Size is not (ModelRegistry.Tiny or ModelRegistry.Full))
        {
            Fail("size", plugin is null ? $"unknown size \"{Size}\"; expected \"test\", \"tiny\" or \"full\"" : $"unknown size \"{Size}\"; expected \"tiny\" or \"full\"");
        }

        if (plugin is not null && Objectives is { Count: > 1 })
        {
            Fail("objectives", $"{Architecture} trains one objective (its paper's loss: {string.Join(", ", plugin.Losses)}), got {Objectives.Count}");
        }

        if (Objectives is null || Objectives.Count == 0)
        {
            Fail("objectives", "at least one objective is needed");
        }

        for (var i = 0; i < Objectives!.Count; i++)
        {
            var o = Objectives[i];
            if (o is null || !losses.Contains(o.Loss))
            {
                Fail($"objectives[{i}].loss", $"unknown loss \"{o?.Loss}\"; available for {Architecture}: {string.Join(", ", losses)}");
            }

            if (string.IsNullOrWhiteSpace(o!.Name) || !o.Name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-'))
            {
                Fail($"objectives[{i}].name", $"\"{o.Name}\" must be non-empty ASCII letters, digits, '_' or '-'");
            }

            if (Objectives.Take(i).Any(p => p.Name == o.Name))
            {
                Fail($"objectives[{i}].name", $"\"{o.Name}\" is used twice");
            }

            if (!double.IsFinite(o.Weight))
            {
                Fail($"objectives[{i}].weight", "must be a finite number");
            }

            if (o.LabelSmoothing is < 0 or >= 1)
            {
                Fail($"objectives[{i}].label_smoothing", $"must be in [0, 1), got {o.LabelSmoothing}");
            }
        }

        if (Optimizer is null)
        {
            Fail("optimizer", "missing");
        }

        if (Optimizer!.Problem() is { } p)
        {
            Fail($"optimizer.{p.Field}", p.Message);
        }

        if (Schedule is null)
        {
            Fail("schedule", "missing");
        }

        if (Schedule!.Problem() is { } s)
        {
            Fail($"schedule.{s.Field}", s.Message);
        }

        if (double.IsNaN(GradientClipNorm) || GradientClipNorm < 0)
        {
            Fail("gradient_clip_norm", $"must be >= 0, got {GradientClipNorm}");
        }

        if (AccumulationSteps < 1)
        {
            Fail("accumulation_steps", $"must be >= 1, got {AccumulationSteps}");
        }

        if (EmaDecay is < 0 or >= 1)
        {
            Fail("ema_decay", $"must be in [0, 1), got {EmaDecay}");
        }

        if (Steps < 0 || (Steps == 0 && Epochs < 1 && (Stages is null || Stages.Count == 0)))
        {
            Fail(Steps < 0 ? "steps" : "epochs", "the run needs steps >= 1, epochs >= 1 or stages");
        }

        for (var i = 0; i < (Stages?.Count ?? 0); i++)
        {
            var st = Stages![i];
            if (st is null || (st.Steps < 1 && st.Epochs < 1))
            {
                Fail($"stages[{i}]", "a stage needs steps >= 1 or epochs >= 1");
            }

            if (st!.LearningRate is { } lr && !(lr > 0))
            {
                Fail($"stages[{i}].learning_rate", $"must be positive, got {lr}");
            }

            foreach (var part in st.LossWeights?.Keys ?? Enumerable.Empty<string>())
            {
                if (!Objectives.Any(o => o.Name == part) && !(plugin?.LossParts.Contains(part) ?? false))
                {
                    Fail($"stages[{i}].loss_weights.{part}", $"no objective or loss part is named \"{part}\" (objectives: {string.Join(", ", Objectives.Select(o => o.Name))}{(plugin is { LossParts.Count: > 0 } ? $"; parts: {string.Join(", ", plugin.LossParts)}" : "")})");
                }
            }
        }

        if (Data is null)
        {
            Fail("data", "missing");
        }

        if (Data!.BatchSize < 2)
        {
            Fail("data.batch_size", $"a contrastive batch needs at least 2 examples, got {Data.BatchSize}");
        }

        if (Data.Views is not null && Data.Views is not (1 or 2))
        {
            Fail("data.views", $"must be 1 or 2, got {Data.Views}");
        }

        if (Data.SentenceSubsetProbability is < 0 or > 1)
        {
            Fail("data.sentence_subset_probability", $"must be in [0, 1], got {Data.SentenceSubsetProbability}");
        }

        if (Data.Workers < 1 || Data.Prefetch < 1)
        {
            Fail(Data.Workers < 1 ? "data.workers" : "data.prefetch", "must be >= 1");
        }

        if (Data.Augmentation is not null)
        {
            try
            {
                _ = TransformPipeline.FromJson(Data.Augmentation.Value.GetRawText());
            }
            catch (Exception ex) when (ex is ArgumentException or FormatException or JsonException or InvalidOperationException or VolumeFormatException)
            {
                Fail("data.augmentation", ex.Message);
            }
        }

        if (CheckpointEvery < 0 || KeepLastCheckpoints < 1 || EvaluateEvery < 0 || EarlyStoppingPatience < 0)
        {
            Fail("checkpoint_every", "checkpoint_every, evaluate_every, early_stopping_patience must be >= 0 and keep_last_checkpoints >= 1");
        }
    }

    /// <summary>The model configuration of <see cref="Size"/> over a vocabulary.</summary>
    public Clip3dConfig ModelConfig(int vocabularySize) => Size switch
    {
        "test" => new Clip3dConfig
        {
            Volume = new VolumeTransformerConfig { InputSize = 16, PatchSize = 8, Width = 16, Depth = 1, Heads = 2, MlpRatio = 2 },
            Text = new BertConfig
            {
                VocabSize = vocabularySize, HiddenSize = 16, NumHiddenLayers = 1, NumAttentionHeads = 2, IntermediateSize = 32, MaxPositionEmbeddings = 128,
                HiddenDropoutProb = 0.1, AttentionProbsDropoutProb = 0.1, AddPoolingLayer = false,
            },
            EmbeddingDim = 8,
            TextPooling = TextPooling.Mean,
            MaxTextTokens = 128,
        },
        ModelRegistry.Full => Clip3dConfig.Full(vocabularySize),
        _ => Clip3dConfig.Tiny(vocabularySize),
    };

    /// <summary>MedBLIP's preprocessing (min-max, aspect-keeping trilinear resize, centred zero pad) at the model's input size.</summary>
    public static TransformPipeline Preprocessing(int size) => new(
    [
        new MinMaxNormalize { OutputMin = 0, OutputMax = 1 },
        new ResizeLongestSide { Size = size, AlignCorners = true, Interpolation = Interpolation.Trilinear },
        new CropOrPad { Size = new VolumeShape(size, size, size), FillValue = 0, Centering = CropOrPadCentering.ExtraAfter },
    ], $"medblip-{size}");

    /// <summary>The registered recipe architecture of <see cref="Architecture"/>, or null for the built-in <c>clip3d</c>.</summary>
    [JsonIgnore]
    public RecipeArchitecture? Plugin => Architecture != "clip3d" && RecipeArchitectures.TryGet(Architecture, out var a) ? a : null;

    /// <summary>Augmented views per example (2 for two-view self-supervision such as LVM-Med).</summary>
    [JsonIgnore]
    public int ViewCount => Data.Views ?? Plugin?.Views ?? 1;

    /// <summary>The model configuration of <see cref="Size"/> for any architecture.</summary>
    public ArchitectureConfig CreateModelConfig(int vocabularySize) => Plugin is { } plugin ? plugin.ModelConfig(Size, vocabularySize) : ModelConfig(vocabularySize);

    /// <summary>The model configuration of <see cref="Size"/> whose text encoder has <paramref name="textModel"/>'s sizes.</summary>
    /// <exception cref="NotSupportedException">The architecture takes no pretrained text model.</exception>
    public ArchitectureConfig CreateModelConfig(Backbones.PretrainedBert textModel) =>
        (Plugin is { TakesTextModel: true } plugin ? plugin : throw new NotSupportedException($"Architecture \"{Architecture}\" takes no pretrained text model.")).ModelConfig(Size, textModel);

    /// <summary>The deterministic preprocessing of the recipe's model.</summary>
    public TransformPipeline CreatePreprocessing(ArchitectureConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return Plugin is { } plugin ? plugin.Preprocessing(config) : Preprocessing(((Clip3dConfig)config).Volume.InputSize);
    }

    /// <summary>The longest tokenized report of <paramref name="model"/> (the limit of the batch collator).</summary>
    public int MaxTextTokens(VisionLanguageModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return Plugin is { } plugin ? plugin.MaxTextTokens(model) : model.DualEncoder.MaxTextTokens;
    }

    /// <summary>The text of a synthetic case this recipe's architecture trains on (clip3d: the report; MedBLIP: the EHR
    /// text with its diagnosis sentence).</summary>
    public string SyntheticReport(Synthetic.SyntheticBrainCase example)
    {
        ArgumentNullException.ThrowIfNull(example);
        return Plugin is { } plugin ? plugin.SyntheticReport(example) : example.Report;
    }

    /// <summary>The random transforms that make the training views: <see cref="DataSettings.Augmentation"/>, else the
    /// architecture's default (LVM-Med's two views), else null.</summary>
    public TransformPipeline? CreateAugmentation(ArchitectureConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return Data.Augmentation is { } json ? TransformPipeline.FromJson(json.GetRawText()) : Plugin?.DefaultAugmentation(config);
    }

    /// <summary>Creates the recipe's model with seeded initial weights; with <see cref="TextModel"/>, its text encoder holds
    /// that pretrained model's weights and the model uses its tokenizer.</summary>
    /// <param name="tokenizer">The tokenizer; null exactly when <see cref="TextModel"/> is set (it brings its own).</param>
    /// <param name="seed">The weights' seed (null: <see cref="Seed"/>).</param>
    /// <param name="device">Where the model lives.</param>
    /// <param name="trainingReports">The training reports, when known: the architecture may adapt its configuration to them
    /// (<see cref="RecipeArchitecture.AdaptToReports"/>).</param>
    public VisionLanguageModel CreateModel(TextTokenizer? tokenizer, int? seed = null, torch.Device? device = null, IReadOnlyList<string>? trainingReports = null)
    {
        if (TextModel is not null)
        {
            if (tokenizer is not null)
            {
                throw new ArgumentException($"The recipe's text_model ({TextModel}) brings its own vocabulary; pass no tokenizer.", nameof(tokenizer));
            }

            using var text = Backbones.PretrainedBert.Load(TextModel);
            return CreateModel(text, seed, device, trainingReports);
        }

        ArgumentNullException.ThrowIfNull(tokenizer);
        var config = Plugin is { } plugin ? plugin.ModelConfig(Size, tokenizer) : CreateModelConfig(tokenizer.VocabularySize);
        if (trainingReports is not null && Plugin is { } adapting)
        {
            config = adapting.AdaptToReports(config, tokenizer, trainingReports);
        }

        return VisionLanguageModel.Create(config, tokenizer, CreatePreprocessing(config), seed ?? Seed, device);
    }

    /// <summary>Creates the recipe's model around a pretrained frozen text encoder (whatever <see cref="TextModel"/> says):
    /// seeded initial weights elsewhere, <paramref name="textModel"/>'s weights and tokenizer for the text side.</summary>
    /// <exception cref="NotSupportedException">The architecture takes no pretrained text model.</exception>
    /// <param name="textModel">The pretrained text model (its weights and tokenizer).</param>
    /// <param name="seed">The weights' seed (null: <see cref="Seed"/>).</param>
    /// <param name="device">Where the model lives.</param>
    /// <param name="trainingReports">The training reports, when known (<see cref="RecipeArchitecture.AdaptToReports"/>).</param>
    public VisionLanguageModel CreateModel(Backbones.PretrainedBert textModel, int? seed = null, torch.Device? device = null, IReadOnlyList<string>? trainingReports = null)
    {
        ArgumentNullException.ThrowIfNull(textModel);
        var config = CreateModelConfig(textModel);
        var plugin = Plugin!;
        if (trainingReports is not null)
        {
            config = plugin.AdaptToReports(config, textModel.Tokenizer, trainingReports);
        }

        var model = VisionLanguageModel.Create(config, textModel.Tokenizer, CreatePreprocessing(config), seed ?? Seed, device);
        try
        {
            plugin.LoadTextModel(model, textModel);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Creates the recipe's objective for <paramref name="model"/>.</summary>
    /// <param name="model">The model.</param>
    /// <param name="group">The data-parallel job, so the contrastive losses see the global batch; null for one process.</param>
    public TrainingObjective CreateObjective(VisionLanguageModel model, Distributed.ProcessGroup? group = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (Plugin is { } plugin)
        {
            return plugin.CreateObjective(this, model, group);
        }

        var siglip = Objectives.Any(o => o.Loss == "siglip");
        if (Objectives.Count == 1)
        {
            var only = Objectives[0];
            return new DualEncoderObjective(model, CreateLoss(only, group), learnLogitBias: siglip);
        }

        var composite = new CompositeLoss<ContrastiveInput>(Name);
        foreach (var o in Objectives)
        {
            composite.Add(o.Name, CreateLoss(o, group), o.Weight);
        }

        return new DualEncoderObjective(model, composite, learnLogitBias: siglip);
    }

    /// <summary>The trainer options of this recipe, with the run's overrides.</summary>
    /// <param name="outputDirectory">Where checkpoints, metrics and plots go (null for nowhere).</param>
    /// <param name="resume">Continue from the latest checkpoint.</param>
    /// <param name="group">The data-parallel job; null for one process.</param>
    public TrainerOptions CreateTrainerOptions(string? outputDirectory, bool resume = false, Distributed.ProcessGroup? group = null) => new()
    {
        ProcessGroup = group,
        Optimizer = Optimizer,
        Schedule = Schedule.Create(),
        Steps = Steps,
        Epochs = Math.Max(1, Epochs),
        AccumulationSteps = AccumulationSteps,
        GradientClipNorm = GradientClipNorm,
        Stages = [.. Stages.Select(s => new TrainingStage { Name = s.Name, Steps = s.Steps, Epochs = s.Epochs, LearningRate = s.LearningRate, LossWeights = s.LossWeights, ResetOptimizer = s.ResetOptimizer })],
        EmaDecay = EmaDecay,
        Seed = Seed,
        OutputDirectory = outputDirectory,
        CheckpointEvery = CheckpointEvery,
        KeepLastCheckpoints = KeepLastCheckpoints,
        Resume = resume,
        EvaluateEvery = EvaluateEvery,
        BestMetric = BestMetric,
        HigherIsBetter = HigherIsBetter,
        EarlyStoppingPatience = EarlyStoppingPatience,
    };

    // CLIP: every rank scores the whole gathered batch, so the local rows' gradient times the world size is exact without a
    // collective in the backward; SigLIP scores local rows against gathered texts, so its gather all-reduces in the backward.
    private static VlpLoss<ContrastiveInput> CreateLoss(ObjectiveSettings o, Distributed.ProcessGroup? group) => o.Loss switch
    {
        "siglip" => new SigLipLoss(new SigLipLossOptions { Gatherer = Gatherer(group, Distributed.GatheredGradient.AllReduced) }),
        _ => new ClipLoss(new ClipLossOptions { LabelSmoothing = o.LabelSmoothing, Gatherer = Gatherer(group, Distributed.GatheredGradient.ScaledByWorldSize) }),
    };

    private static Distributed.ProcessGroupGatherer? Gatherer(Distributed.ProcessGroup? group, Distributed.GatheredGradient gradient) =>
        group is { WorldSize: > 1 } ? new Distributed.ProcessGroupGatherer(group, gradient) : null;
}

/// <summary>One loss of a recipe.</summary>
public sealed record ObjectiveSettings
{
    /// <summary>The part's name in logs and stage weights.</summary>
    public string Name { get; init; } = "clip";

    /// <summary>The loss: <c>clip</c> (symmetric InfoNCE) or <c>siglip</c> (sigmoid, with a learnable logit bias).</summary>
    public string Loss { get; init; } = "clip";

    /// <summary>Its weight in the total.</summary>
    public double Weight { get; init; } = 1.0;

    /// <summary>Label smoothing of the CLIP loss.</summary>
    public double LabelSmoothing { get; init; }
}

/// <summary>The learning-rate schedule of a recipe.</summary>
public sealed record ScheduleSettings
{
    /// <summary><c>warmup_cosine</c> (default), <c>constant</c>, <c>step</c> or <c>cosine_restarts</c>.</summary>
    public string Type { get; init; } = "warmup_cosine";

    /// <summary>Warm-up fraction of the steps (<c>warmup_cosine</c>).</summary>
    public double WarmupFraction { get; init; } = 0.1;

    /// <summary>Final rate as a fraction of the peak (<c>warmup_cosine</c>).</summary>
    public double FinalFraction { get; init; }

    /// <summary>Warm-up steps (<c>constant</c>).</summary>
    public long WarmupSteps { get; init; }

    /// <summary>Steps between decays (<c>step</c>).</summary>
    public long StepSize { get; init; } = 1000;

    /// <summary>Decay factor (<c>step</c>).</summary>
    public double Gamma { get; init; } = 0.1;

    /// <summary>First cycle length in steps (<c>cosine_restarts</c>).</summary>
    public long FirstCycle { get; init; } = 100;

    /// <summary>First cycle as a fraction of the stage's steps (<c>cosine_restarts</c>; M-FLAG's 0.4); 0 uses <see cref="FirstCycle"/>.</summary>
    public double FirstCycleFraction { get; init; }

    /// <summary>Cycle growth factor (<c>cosine_restarts</c>).</summary>
    public int CycleMultiplier { get; init; } = 1;

    /// <summary>Lowest rate (<c>cosine_restarts</c>).</summary>
    public double MinimumRate { get; init; }

    /// <summary>The problem with these settings, or null.</summary>
    public (string Field, string Message)? Problem() => Type switch
    {
        "warmup_cosine" when WarmupFraction is < 0 or >= 1 => ("warmup_fraction", $"must be in [0, 1), got {WarmupFraction}"),
        "warmup_cosine" when FinalFraction is < 0 or > 1 => ("final_fraction", $"must be in [0, 1], got {FinalFraction}"),
        "warmup_cosine" => null,
        "constant" => WarmupSteps < 0 ? ("warmup_steps", "must be >= 0") : null,
        "step" when StepSize < 1 => ("step_size", $"must be >= 1, got {StepSize}"),
        "step" => Gamma > 0 ? null : ("gamma", $"must be positive, got {Gamma}"),
        "cosine_restarts" when FirstCycle < 1 => ("first_cycle", $"must be >= 1, got {FirstCycle}"),
        "cosine_restarts" when FirstCycleFraction is < 0 or > 1 => ("first_cycle_fraction", $"must be in [0, 1], got {FirstCycleFraction}"),
        "cosine_restarts" when CycleMultiplier < 1 => ("cycle_multiplier", $"must be >= 1, got {CycleMultiplier}"),
        "cosine_restarts" => MinimumRate >= 0 ? null : ("minimum_rate", "must be >= 0"),
        _ => ("type", $"unknown schedule \"{Type}\"; expected warmup_cosine, constant, step or cosine_restarts"),
    };

    /// <summary>The schedule.</summary>
    public LearningRateSchedule Create() => Type switch
    {
        "constant" => LearningRateSchedule.Constant(WarmupSteps),
        "step" => LearningRateSchedule.Step(StepSize, Gamma),
        "cosine_restarts" when FirstCycleFraction > 0 => new FractionalRestarts(FirstCycleFraction, CycleMultiplier, MinimumRate),
        "cosine_restarts" => LearningRateSchedule.CosineWarmRestarts(FirstCycle, CycleMultiplier, MinimumRate),
        _ => LearningRateSchedule.WarmupCosine(WarmupFraction, FinalFraction),
    };
}

/// <summary>Cosine warm restarts whose first cycle is a fraction of the stage (M-FLAG: T_0 = 0.4 of the run).</summary>
internal sealed class FractionalRestarts(double fraction, int multiplier, double minimum) : LearningRateSchedule
{
    public override double LearningRate(double baseRate, long stageStep, long totalSteps) =>
        CosineWarmRestarts(Math.Max(1, (long)(fraction * totalSteps)), multiplier, minimum).LearningRate(baseRate, stageStep, totalSteps);
}

/// <summary>A stage of a recipe.</summary>
public sealed record StageSettings
{
    /// <summary>The stage's name.</summary>
    public string Name { get; init; } = "stage";

    /// <summary>Steps of the stage.</summary>
    public long Steps { get; init; }

    /// <summary>Epochs of the stage (when steps is 0).</summary>
    public int Epochs { get; init; }

    /// <summary>Peak learning rate; null keeps the optimizer's.</summary>
    public double? LearningRate { get; init; }

    /// <summary>Weights of the named objectives in this stage.</summary>
    public IReadOnlyDictionary<string, double> LossWeights { get; init; } = new Dictionary<string, double>();

    /// <summary>Start the stage with a new optimizer (<c>reset_optimizer</c>; see <see cref="TrainingStage.ResetOptimizer"/>).</summary>
    public bool ResetOptimizer { get; init; }
}

/// <summary>Data settings of a recipe.</summary>
public sealed record DataSettings
{
    /// <summary>Examples per micro-batch.</summary>
    public int BatchSize { get; init; } = 32;

    /// <summary>Probability of training on a random subset of a report's sentences.</summary>
    public double SentenceSubsetProbability { get; init; }

    /// <summary>Loader worker threads.</summary>
    public int Workers { get; init; } = 2;

    /// <summary>Batches prepared ahead.</summary>
    public int Prefetch { get; init; } = 2;

    /// <summary>Random transforms applied before the model's preprocessing, as a <see cref="TransformPipeline"/> JSON object;
    /// null for none (or the architecture's default views, for two-view self-supervision).</summary>
    public JsonElement? Augmentation { get; init; }

    /// <summary>Augmented views per example (1 or 2); null for the architecture's own (LVM-Med: 2).</summary>
    public int? Views { get; init; }
}

/// <summary>A recipe file is invalid: the message names the file and the field.</summary>
public sealed class RecipeFormatException : Exception
{
    /// <summary>Creates the exception.</summary>
    public RecipeFormatException(string source, string field, string problem, Exception? inner = null)
        : base($"recipe {source}: field \"{field}\": {problem}.", inner)
    {
        Source = source;
        Field = field;
    }

    /// <summary>Creates the exception.</summary>
    public RecipeFormatException()
        : this("recipe", "$", "invalid")
    {
    }

    /// <summary>Creates the exception.</summary>
    public RecipeFormatException(string message)
        : base(message)
    {
        Source = "recipe";
        Field = "$";
    }

    /// <summary>Creates the exception.</summary>
    public RecipeFormatException(string message, Exception inner)
        : base(message, inner)
    {
        Source = "recipe";
        Field = "$";
    }

    /// <summary>The recipe file.</summary>
    public new string Source { get; }

    /// <summary>The JSON field (snake_case path).</summary>
    public string Field { get; }
}
