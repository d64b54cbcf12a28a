using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using MedVlp.Architectures.MedBlip;
using MedVlp.Data;
using MedVlp.Distributed;
using MedVlp.Synthetic;
using MedVlp.Text;
using MedVlp.Training;
using MedVlp.Volumes.Transforms;
using Spectre.Console;
using static TorchSharp.torch;

namespace MedVlp.Cli.Commands;

/// <summary>
/// <c>medvlp train --recipe NAME (--manifest FILE | --synthetic N) --out DIR [...]</c>: trains a recipe through the
/// <see cref="Trainer"/> with checkpoints, metrics.jsonl, plots and exact <c>--resume</c>; <c>medvlp train --list</c>.
/// </summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var list = new Option<bool>("--list") { Description = "List the built-in recipes and exit." };
        var recipe = new Option<string?>("--recipe") { Description = "A built-in recipe name (see --list) or a recipe .json file." };
        var manifest = new Option<string?>("--manifest") { Description = "A .csv or .jsonl manifest (split \"train\", and \"val\" for evaluation; all entries when no split is given)." };
        var synthetic = new Option<int?>("--synthetic") { Description = "Train on N synthetic volumes with reports generated in memory (and N/6 held out for evaluation): brain MRIs, or chest CTs for colipri (a quarter image-only)." };
        var output = new Option<string?>("--out") { Description = "Folder for checkpoints/, metrics.jsonl, plots/, recipe.json and model/." };
        var steps = new Option<long?>("--steps") { Description = "Optimisation steps (overrides the recipe)." };
        var epochs = new Option<int?>("--epochs") { Description = "Epochs (overrides the recipe)." };
        var batch = new Option<int?>("--batch") { Description = "Examples per micro-batch (overrides the recipe)." };
        var accumulate = new Option<int?>("--accumulate") { Description = "Micro-batches per step: the update of one batch N times larger (overrides the recipe)." };
        var resume = new Option<bool>("--resume") { Description = "Continue from the latest complete checkpoint in --out." };
        var device = new Option<string>("--device") { Description = "cpu or cuda.", DefaultValueFactory = _ => "cpu" };
        var seed = new Option<int?>("--seed") { Description = "Run seed (overrides the recipe)." };
        var checkpointEvery = new Option<int?>("--checkpoint-every") { Description = "Checkpoint interval in steps (overrides the recipe)." };
        var evaluateEvery = new Option<int?>("--eval-every") { Description = "Evaluation interval in steps (overrides the recipe)." };
        var cache = new Option<string?>("--cache")
        {
            Description = "With --manifest: a folder for the preprocessed volumes (the pipeline's deterministic steps, before any random augmentation), written in the first epoch and read in every later one and by later runs; entries are keyed by file, size, time and pipeline.",
        };
        var threads = new Option<int>("--threads") { Description = "libtorch intra-op threads.", DefaultValueFactory = _ => 1 };
        var vocab = new Option<string?>("--vocab") { Description = "A WordPiece vocab.txt (default: the repository's .testdata/bert/vocab.txt)." };
        var textModel = new Option<string?>("--text-model")
        {
            Description = "A pretrained frozen text encoder (mflag): an .onnx BERT export with vocab.txt beside it, or a Hugging Face BERT folder (config.json, weights, vocab.txt); it brings its own vocabulary (overrides the recipe's text_model).",
        };
        var command = new Command("train", "Train a recipe (model, objectives, optimizer, schedule, data) with checkpoints, metrics, plots and exact resume.")
        {
            list, recipe, manifest, synthetic, output, steps, epochs, batch, accumulate, resume, device, seed, checkpointEvery, evaluateEvery, threads, vocab, textModel, cache,
        };
        command.SetAction((parse, cancellationToken) => Task.FromResult(CliErrors.Run(() =>
        {
            if (parse.GetValue(list))
            {
                return List();
            }

            var name = parse.GetValue(recipe) ?? throw new ArgumentException("--recipe is required (a name from `medvlp train --list` or a .json file).");
            var outDir = parse.GetValue(output) ?? throw new ArgumentException("--out is required.");
            var manifestPath = parse.GetValue(manifest);
            var syntheticCount = parse.GetValue(synthetic);
            var cacheDir = parse.GetValue(cache);
            if (cacheDir is not null && manifestPath is null)
            {
                throw new ArgumentException("--cache applies to --manifest runs (synthetic data is made in memory).");
            }

            if ((manifestPath is null) == (syntheticCount is null))
            {
                throw new ArgumentException("Give exactly one of --manifest FILE and --synthetic N.");
            }

            if (parse.GetValue(steps) is not null && parse.GetValue(epochs) is not null)
            {
                throw new ArgumentException("Give --steps or --epochs, not both.");
            }

            var n = parse.GetValue(threads);
            if (n < 1)
            {
                throw new ArgumentException($"--threads must be at least 1, got {n}.");
            }

            TorchSharp.torch.set_num_threads(n);
            var r = TrainingRecipe.Resolve(name);
            r = r with
            {
                Steps = parse.GetValue(steps) ?? (parse.GetValue(epochs) is not null ? 0 : r.Steps),
                Epochs = parse.GetValue(epochs) ?? r.Epochs,
                Stages = parse.GetValue(steps) is not null || parse.GetValue(epochs) is not null ? [] : r.Stages,
                AccumulationSteps = parse.GetValue(accumulate) ?? r.AccumulationSteps,
                Seed = parse.GetValue(seed) ?? r.Seed,
                CheckpointEvery = parse.GetValue(checkpointEvery) ?? r.CheckpointEvery,
                EvaluateEvery = parse.GetValue(evaluateEvery) ?? r.EvaluateEvery,
                Data = r.Data with { BatchSize = parse.GetValue(batch) ?? r.Data.BatchSize },
                TextModel = parse.GetValue(textModel) ?? r.TextModel,
            };
            if (r.TextModel is not null && parse.GetValue(vocab) is not null)
            {
                throw new ArgumentException("--vocab and a text model (--text-model or the recipe's text_model) exclude each other: the text model brings its own vocabulary.");
            }

            r.Validate("command line");
            return Run(r, manifestPath, syntheticCount, outDir, parse.GetValue(resume), parse.GetValue(device)!, parse.GetValue(vocab), cacheDir, cancellationToken);
        })));
        return command;
    }

    private static int List()
    {
        var table = new Table().AddColumn("recipe").AddColumn("model").AddColumn("objectives").AddColumn("description");
        foreach (var r in TrainingRecipe.BuiltIn)
        {
            table.AddRow(Markup.Escape(r.Name), Markup.Escape($"{r.Architecture} ({r.Size})"),
                Markup.Escape(string.Join(" + ", r.Objectives.Select(o => o.Name))), Markup.Escape(r.Description));
        }

        AnsiConsole.Write(table);
        Console.WriteLine("Use one with --recipe NAME, or write your own: medvlp train --recipe my-recipe.json (same fields, snake_case).");
        return 0;
    }

    private static int Run(TrainingRecipe recipe, string? manifestPath, int? syntheticCount, string outDir, bool resume, string deviceName, string? vocabPath,
        string? cacheDir, CancellationToken cancellationToken)
    {
        // Under mpirun/srun every rank runs this command; alone it is a job of one process.
        using var group = ProcessGroup.Create();
        if (group.WorldSize == 1)
        {
            return Run(recipe, manifestPath, syntheticCount, outDir, resume, deviceName, vocabPath, cacheDir, group, cancellationToken);
        }

        try
        {
            return Run(recipe, manifestPath, syntheticCount, outDir, resume, deviceName, vocabPath, cacheDir, group, cancellationToken);
        }
        catch (Exception e)
        {
            // Never leave the other ranks waiting in a collective: end the whole job, naming this rank.
            group.Abort(1, e.Message);
            throw;
        }
    }

    private static int Run(TrainingRecipe recipe, string? manifestPath, int? syntheticCount, string outDir, bool resume, string deviceName, string? vocabPath,
        string? cacheDir, ProcessGroup group, CancellationToken cancellationToken)
    {
        var device = deviceName switch
        {
            "cpu" => TorchSharp.torch.CPU,
            "cuda" when TorchSharp.torch.cuda.is_available() => new TorchSharp.torch.Device(TorchSharp.DeviceType.CUDA, group.LocalRank % Math.Max(1, TorchSharp.torch.cuda.device_count())),
            "cuda" => throw new ArgumentException("--device cuda: no CUDA device or CUDA libtorch is available; use --device cpu."),
            _ => throw new ArgumentException($"--device must be cpu or cuda, got \"{deviceName}\"."),
        };
        var clock = Stopwatch.StartNew();
        // A pretrained text model brings its own vocabulary (recipe.CreateModel reads it); otherwise the WordPiece vocab.txt.
        var vocabulary = recipe.TextModel is null ? WordPieceTextTokenizer.FromVocabularyFile(vocabPath ?? CliPaths.FindDefaultVocabulary()) : null;
        Directory.CreateDirectory(outDir);
        if (group.IsMain)
        {
            File.WriteAllText(Path.Combine(outDir, "recipe.json"), recipe.ToJson());
        }

        using var textModel = recipe.TextModel is null ? null : MedVlp.Backbones.PretrainedBert.Load(recipe.TextModel);
        if (textModel is not null && group.IsMain)
        {
            var c = textModel.Config;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"frozen text model: {textModel.Path} ({textModel.Format}; {c.NumHiddenLayers} layers x {c.HiddenSize}, {c.NumAttentionHeads} heads, {textModel.Tokenizer.VocabularySize} tokens)") +
                (textModel.OnnxMaxDifference is { } d ? string.Create(CultureInfo.InvariantCulture, $"; equals ONNX Runtime to {d:G2}") : ""));
        }

        var plugin = recipe.Plugin;
        // An architecture with its own synthetic data (COLIPRI: chest CTs) makes it before the model, which may adapt to its reports.
        SyntheticTrainingSet? own = null;
        if (syntheticCount is { } requested && plugin is not null && (vocabulary is not null || textModel is not null))
        {
            var config = textModel is not null ? recipe.CreateModelConfig(textModel) : recipe.CreateModelConfig(vocabulary!.VocabularySize);
            own = GenerateOwn(plugin, config, recipe.CreatePreprocessing(config), requested, recipe.Seed, cancellationToken);
        }

        using var model = textModel is not null ? recipe.CreateModel(textModel, device: device, trainingReports: own?.TrainReports) : recipe.CreateModel(vocabulary, device: device, trainingReports: own?.TrainReports);
        var tokenizer = model.Tokenizer;
        using var objective = recipe.CreateObjective(model, group);
        var maxTokens = recipe.MaxTextTokens(model);
        var needsReports = plugin?.NeedsReports ?? true;
        var inputShape = (model.Module as MedVlp.Modeling.IVolumeInputModel)?.ImageInputShape
            ?? throw new NotSupportedException($"Architecture \"{model.Architecture}\" does not take preprocessed volumes or images.");
        var images = inputShape.Count == 3;
        var views = recipe.ViewCount;
        var augmentation = plugin is null ? null : recipe.CreateAugmentation(model.Config);
        string Report(string report) => needsReports ? report : "";
        var collator = new TrainingBatchCollator(model.Collator, new MedVlp.Data.TextCollation { MaxTokens = maxTokens }, recipe.Data.SentenceSubsetProbability, recipe.Seed);
        ITrainingData data;
        ITrainingData? validation = null;
        IReadOnlyList<SyntheticBrainCase> heldOut = [];
        var disposables = new List<IDisposable>();
        try
        {
            if (own is not null)
            {
                // Already preprocessed: the batches only stack them.
                Tensor Stack(IReadOnlyList<MedVlp.Volumes.Volume> v) => Collator.CollateVolumes(v, inputShape, device);
                var train = new PreparedTrainingData(own.Train, own.TrainReports, Stack, collator, recipe.Data.BatchSize, recipe.Seed, cancellationToken);
                disposables.Add(train);
                data = train;
                if (own.HeldOut.Count >= 2)
                {
                    var val = new PreparedTrainingData(own.HeldOut, own.HeldOutReports, Stack, new TrainingBatchCollator(model.Collator, new MedVlp.Data.TextCollation { MaxTokens = maxTokens }),
                        Math.Min(recipe.Data.BatchSize, own.HeldOut.Count), recipe.Seed, cancellationToken);
                    disposables.Add(val);
                    validation = val;
                }
            }
            else if (syntheticCount is { } count)
            {
                if (count < recipe.Data.BatchSize)
                {
                    throw new ArgumentException($"--synthetic {count} is smaller than one batch of {recipe.Data.BatchSize}.");
                }

                var cases = SyntheticBrainDataset.Generate(count, recipe.Seed, cancellationToken: cancellationToken);
                heldOut = SyntheticBrainDataset.Generate(Math.Max(3, count / 6), recipe.Seed, firstIndex: count, cancellationToken: cancellationToken);
                if (plugin is not null && (views > 1 || augmentation is not null || images))
                {
                    // 2D models train on the middle axial slice of each brain (the model's preprocessing extracts it); the views
                    // are augmented afresh every epoch.
                    Tensor Collate(IReadOnlyList<MedVlp.Volumes.Volume> v) => images ? Collator.CollateImages(v, inputShape, device) : Collator.CollateVolumes(v, inputShape, device);
                    MedVlp.Volumes.Volume[] Prepare(IReadOnlyList<SyntheticBrainCase> set)
                    {
                        var prepared = new MedVlp.Volumes.Volume[set.Count];
                        Parallel.For(0, set.Count, new ParallelOptions { CancellationToken = cancellationToken }, i => prepared[i] = model.Preprocessing.Apply(set[i].Volume));
                        return prepared;
                    }

                    data = new AugmentedTrainingData(Prepare(cases), [.. cases.Select(c => Report(recipe.SyntheticReport(c)))], augmentation, views, Collate, collator, recipe.Data.BatchSize, recipe.Seed);
                    if (heldOut.Count >= 2)
                    {
                        validation = new AugmentedTrainingData(Prepare(heldOut), [.. heldOut.Select(c => Report(recipe.SyntheticReport(c)))], augmentation, views, Collate,
                            new TrainingBatchCollator(model.Collator, new MedVlp.Data.TextCollation { MaxTokens = maxTokens }), Math.Min(recipe.Data.BatchSize, heldOut.Count), recipe.Seed + 1);
                    }
                }
                else
                {
                    var train = new PreparedTrainingData([.. cases.Select(c => c.Volume)], [.. cases.Select(recipe.SyntheticReport)],
                        v => model.PrepareVolumesForTraining(v, cancellationToken), collator, recipe.Data.BatchSize, recipe.Seed, cancellationToken)
                    {
                        ShardIndex = group.Rank, ShardCount = group.WorldSize,
                    };
                    disposables.Add(train);
                    data = train;
                    if (heldOut.Count >= 2)
                    {
                        var val = new PreparedTrainingData([.. heldOut.Select(c => c.Volume)], [.. heldOut.Select(recipe.SyntheticReport)],
                            v => model.PrepareVolumesForTraining(v, cancellationToken), new TrainingBatchCollator(tokenizer, maxTokens),
                            Math.Max(1, Math.Min(recipe.Data.BatchSize, heldOut.Count / group.WorldSize)), recipe.Seed, cancellationToken)
                        {
                            ShardIndex = group.Rank, ShardCount = group.WorldSize,
                        };
                        disposables.Add(val);
                        validation = val;
                    }
                }
            }
            else
            {
                var m = Manifest.Load(manifestPath!);
                var trainEntries = m.Entries.Any(e => e.Split.Length > 0) ? m.Split("train") : m.Entries;
                var valEntries = m.Split("val");
                // clip3d augments before its preprocessing; the 2D and self-supervised recipes augment the model-ready image.
                var pipeline = plugin is not null && augmentation is not null
                    ? new TransformPipeline([.. model.Preprocessing.Transforms, .. augmentation.Transforms], "train")
                    : recipe.Data.Augmentation is { } json
                        ? new TransformPipeline([.. TransformPipeline.FromJson(json.GetRawText()).Transforms, .. model.Preprocessing.Transforms], "train")
                        : model.Preprocessing;
                var options = new VolumeLoaderOptions
                {
                    BatchSize = recipe.Data.BatchSize, Workers = recipe.Data.Workers, PrefetchBatches = recipe.Data.Prefetch, Seed = recipe.Seed, DropLast = true,
                    ShardIndex = group.Rank, ShardCount = group.WorldSize, Views = views, Reader = MedVlp.Data.ImageFileReader.ReadAny,
                    CacheDirectory = cacheDir,
                };
                if (!needsReports)
                {
                    trainEntries = [.. trainEntries.Select(e => e with { Report = "" })];
                    valEntries = [.. valEntries.Select(e => e with { Report = "" })];
                }

                data = new LoaderTrainingData(new VolumeDataLoader(trainEntries, pipeline, options), collator) { Images = images };
                if (valEntries.Count >= 2)
                {
                    var valOptions = new VolumeLoaderOptions
                    {
                        BatchSize = Math.Max(1, Math.Min(recipe.Data.BatchSize, valEntries.Count / group.WorldSize)), Workers = recipe.Data.Workers, Shuffle = false,
                        DropLast = true, ShardIndex = group.Rank, ShardCount = group.WorldSize, Views = views, Reader = MedVlp.Data.ImageFileReader.ReadAny,
                        CacheDirectory = cacheDir,
                    };
                    validation = new LoaderTrainingData(new VolumeDataLoader(valEntries, views > 1 ? pipeline : model.Preprocessing, valOptions),
                        new TrainingBatchCollator(tokenizer, maxTokens)) { Images = images };
                }
            }

            using var trainer = new Trainer(objective, recipe.CreateTrainerOptions(outDir, resume, group));
            Func<CancellationToken, IReadOnlyDictionary<string, double>>? evaluate = null;
            if (validation is not null)
            {
                evaluate = token =>
                {
                    var metrics = new Dictionary<string, double>(trainer.ValidationLoss(validation, token));
                    foreach (var (k, v) in own?.Evaluate?.Invoke(model, token) ?? new Dictionary<string, double>())
                    {
                        metrics[k] = v;
                    }
                    if (heldOut.Count > 0 && model.Module is MedBlipModel)
                    {
                        // MedBLIP: the contrastive zero-shot diagnosis (query-max similarity to each answer text).
                        var diagnoses = new MedBlipAssistant(model).DiagnoseContrastive([.. heldOut.Select(c => c.Volume)]);
                        metrics["val/zero_shot_accuracy"] = heldOut.Where((c, i) => c.Diagnosis == diagnoses[i]).Count() / (double)heldOut.Count;
                    }
                    else if (heldOut.Count > 0 && model.Module is MedVlp.Modeling.IDualEncoder)
                    {
                        var predictions = model.CreateZeroShotClassifier(DemoCommand.DiagnosisLabels).Classify([.. heldOut.Select(c => c.Volume)], token);
                        metrics["val/zero_shot_accuracy"] = heldOut.Where((c, i) => (int)c.Diagnosis == predictions[i].LabelIndex).Count() / (double)heldOut.Count;
                    }

                    if (plugin is not null && model.Module is MedVlp.Modeling.IImageEncoder && heldOut.Count >= 6)
                    {
                        // What the encoder learned: a cross-validated linear probe of the diagnosis on the held-out embeddings.
                        var embeddings = model.VolumeEncoder.Embed([.. heldOut.Select(c => c.Volume)], token);
                        var labels = heldOut.Select(c => (int)c.Diagnosis).ToArray();
                        var classes = Enum.GetNames<CognitiveDiagnosis>();
                        if (labels.Distinct().Count() > 1)
                        {
                            metrics["val/probe_accuracy"] = MedVlp.Evaluation.LinearProbe.CrossValidate(embeddings, labels, classes, 3, recipe.Seed, cancellationToken: token).Report.Accuracy;
                        }
                    }

                    return metrics;
                };
            }

            var total = trainer.TotalSteps(data);
            if (!group.IsMain)
            {
                trainer.Fit(data, evaluate, cancellationToken: cancellationToken); // rank 0 reports and writes
                return 0;
            }

            var summary = RunWithProgress(trainer, data, evaluate, total, cancellationToken);
            var modelDir = Path.Combine(outDir, "model");
            model.Save(modelDir);
            WriteSummary(recipe, summary, total, clock.Elapsed, outDir, modelDir, trainer, group);
            return 0;
        }
        finally
        {
            foreach (var d in disposables)
            {
                d.Dispose();
            }
        }
    }

    private static SyntheticTrainingSet? GenerateOwn(RecipeArchitecture plugin, MedVlp.Modeling.ArchitectureConfig config, TransformPipeline preprocessing, int count, int seed,
        CancellationToken cancellationToken)
    {
        var heldOut = Math.Max(3, count / 6);
        SyntheticTrainingSet? set = null;
        if (Console.IsOutputRedirected)
        {
            return plugin.CreateSyntheticData(config, preprocessing, count, heldOut, seed, cancellationToken: cancellationToken);
        }

        AnsiConsole.Progress().AutoClear(false).Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn()).Start(ctx =>
        {
            var task = ctx.AddTask($"synthetic {plugin.Name} data", maxValue: count + heldOut);
            set = plugin.CreateSyntheticData(config, preprocessing, count, heldOut, seed, new InlineProgress<int>(n => task.Value = n), cancellationToken);
            task.Value = task.MaxValue;
        });
        return set;
    }

    private static TrainingSummary RunWithProgress(Trainer trainer, ITrainingData data, Func<CancellationToken, IReadOnlyDictionary<string, double>>? evaluate,
        long total, CancellationToken cancellationToken)
    {
        if (Console.IsOutputRedirected)
        {
            // Plain lines for logs and pipes: one per step.
            return trainer.Fit(data, evaluate, new InlineProgress<TrainingProgress>(p => Console.WriteLine(Describe(p))), cancellationToken);
        }

        TrainingSummary? summary = null;
        var columns = new ProgressColumn[] { new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn() };
        AnsiConsole.Progress().AutoClear(false).HideCompleted(false).Columns(columns).Start(ctx =>
        {
            var task = ctx.AddTask("Training", maxValue: total);
            summary = trainer.Fit(data, evaluate, new InlineProgress<TrainingProgress>(p =>
            {
                task.Value = p.Step;
                task.Description = Markup.Escape(string.Create(CultureInfo.InvariantCulture,
                    $"Training ({p.Stage}, epoch {p.Epoch}, loss {p.Losses["total"]:F3}, lr {p.LearningRate:G3}, {p.ExamplesPerSecond:F0}/s)"));
            }), cancellationToken);
            task.Value = total;
        });
        return summary!;
    }

    private static string Describe(TrainingProgress p)
    {
        var head = string.Create(CultureInfo.InvariantCulture, $"step {p.Step}/{p.TotalSteps} epoch {p.Epoch} [{p.Stage}] lr {p.LearningRate:G4} {p.ExamplesPerSecond:F1} ex/s ");
        var losses = string.Join(' ', p.Losses.Select(kv => kv.Key + "=" + kv.Value.ToString("F4", CultureInfo.InvariantCulture)));
        var eval = p.Evaluation is { } e ? " | " + string.Join(' ', e.Select(kv => kv.Key + "=" + kv.Value.ToString("F4", CultureInfo.InvariantCulture))) : "";
        return head + losses + eval;
    }

    private static void WriteSummary(TrainingRecipe recipe, TrainingSummary summary, long total, TimeSpan elapsed, string outDir, string modelDir, Trainer trainer,
        ProcessGroup group)
    {
        var table = new Table().Title(Markup.Escape($"training summary: {recipe.Name}")).AddColumn("").AddColumn("");
        if (group.WorldSize > 1)
        {
            table.AddRow("data parallel", Markup.Escape(string.Create(CultureInfo.InvariantCulture,
                $"{group.WorldSize} ranks ({group.Backend}), global batch {recipe.Data.BatchSize * group.WorldSize} = {group.WorldSize} x {recipe.Data.BatchSize}")));
        }

        var resumed = summary.ResumedFromStep > 0 ? string.Create(CultureInfo.InvariantCulture, $" (resumed at {summary.ResumedFromStep})") : "";
        table.AddRow("steps", Markup.Escape(string.Create(CultureInfo.InvariantCulture, $"{summary.StepsDone}/{total}") + resumed));
        table.AddRow("trainable / frozen parameters", Markup.Escape(string.Create(CultureInfo.InvariantCulture,
            $"{trainer.Parameters.All.Sum(p => p.numel()):N0} in {trainer.Parameters.Decay.Count + trainer.Parameters.NoDecay.Count} tensors / {trainer.Parameters.FrozenCount} tensors")));
        foreach (var (k, v) in summary.LastLosses)
        {
            table.AddRow(Markup.Escape($"last loss: {k}"), v.ToString("F4", CultureInfo.InvariantCulture));
        }

        foreach (var (k, v) in summary.LastEvaluation ?? new Dictionary<string, double>())
        {
            table.AddRow(Markup.Escape($"last eval: {k}"), v.ToString("F4", CultureInfo.InvariantCulture));
        }

        if (summary.History.Count > 0)
        {
            table.AddRow("mean throughput", Markup.Escape(string.Create(CultureInfo.InvariantCulture, $"{summary.History.Average(h => h.ExamplesPerSecond):F1} examples/s")));
        }

        table.AddRow("early stop", summary.StoppedEarly ? "yes" : "no");
        table.AddRow("time", Markup.Escape(string.Create(CultureInfo.InvariantCulture, $"{elapsed.TotalSeconds:F1} s")));
        table.AddRow("outputs", Markup.Escape($"{modelDir}, {Path.Combine(outDir, "metrics.jsonl")}, {Path.Combine(outDir, "plots")}, {Path.Combine(outDir, "checkpoints")}"));
        AnsiConsole.Write(table);
    }
}
