using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using MedVlp.Inference;
using MedVlp.Modeling;
using MedVlp.Synthetic;
using MedVlp.Text;
using MedVlp.Training;
using MedVlp.Volumes;
using MedVlp.Volumes.Transforms;
using Spectre.Console;

namespace MedVlp.Cli.Commands;

/// <summary>
/// <c>medvlp demo [--out DIR] [--seed S]</c>: the whole path on a CPU in a few minutes. Generates synthetic brain volumes
/// with reports, pre-trains a small CLIP-style model (3D ViT + BERT), evaluates zero-shot diagnosis on held-out volumes,
/// saves the model package and the pictures.
/// </summary>
internal static class DemoCommand
{
    public static Command Create()
    {
        var output = new Option<string>("--out") { Description = "Folder for model/, loss.png and montage.png.", DefaultValueFactory = _ => CliPaths.DefaultDemoFolder };
        var seed = new Option<int>("--seed") { Description = "Seed of data, weights and training.", DefaultValueFactory = _ => 42 };
        var vocab = new Option<string?>("--vocab") { Description = "A WordPiece vocab.txt (default: the repository's .testdata/bert/vocab.txt, bert-base-uncased)." };
        var train = new Option<int>("--train") { Description = "Training volumes (default: clip3d 480, colipri 2880, medblip 360, prior 480).", DefaultValueFactory = _ => 480 };
        var test = new Option<int>("--test") { Description = "Held-out volumes (a multiple of 3 keeps the classes balanced).", DefaultValueFactory = _ => 90 };
        var epochs = new Option<int>("--epochs") { Description = "Training epochs (the clip3d-demo recipe's 16 by default).", DefaultValueFactory = _ => TrainingRecipe.Resolve("clip3d-demo").Epochs };
        var threads = new Option<int>("--threads")
        {
            Description = "libtorch intra-op threads (default 1: the demo's tensors are small and extra threads mostly wait on each other).",
            DefaultValueFactory = _ => 1,
        };
        var arch = new Option<string>("--arch") { Description = "clip3d (brain MRI, CN / MCI / AD), colipri (chest CT, five findings) or medblip (brain MRI + EHR text, Q-Former + frozen language model, generative diagnosis) or prior / prior3d (brain MRI slices / volumes + reports, PRIOR's three stages, linear probe against random init).", DefaultValueFactory = _ => "clip3d" };
        arch.AcceptOnlyFromAmong("clip3d", "colipri", "medblip", "prior", "prior3d");
        var steps = new Option<int>("--steps") { Description = "colipri / medblip: optimisation steps (default 800 / 400); prior: stage-1 steps, stages 2 and 3 run 4/15 of it (default 150).", DefaultValueFactory = _ => 300 };
        var batch = new Option<int>("--batch") { Description = "colipri / medblip / prior: volumes per step (default 12 / 24 / 16).", DefaultValueFactory = _ => 12 };
        var textModel = new Option<string?>("--text-model") { Description = "colipri: the pretrained BERT of the text encoder, kept frozen: an ONNX export or a Hugging Face folder (default: the repository's .testdata/minilm/model.onnx, all-MiniLM-L6-v2; with --vocab, a small BERT trained from scratch instead)." };
        var command = new Command("demo", "Generate synthetic volumes + reports, pre-train a small 3D vision-language model, evaluate zero-shot on held-out volumes (clip3d: diagnosis from brain MRI, saving the model; colipri: chest CT findings with all four COLIPRI objectives; medblip: generative diagnosis from brain MRI + EHR text, saving the model).")
        {
            output, seed, vocab, train, test, epochs, threads, arch, steps, batch, textModel,
        };
        command.SetAction((parse, cancellationToken) => Task.FromResult(CliErrors.Run(() =>
        {
            var n = parse.GetValue(threads);
            if (n < 1)
            {
                throw new ArgumentException($"--threads must be at least 1, got {n}.");
            }

            TorchSharp.torch.set_num_threads(n);
            if (parse.GetValue(arch) == "medblip")
            {
                // Options left at their (clip3d / colipri) defaults take MedBLIP's own.
                static bool Given(System.CommandLine.Parsing.OptionResult? result) => result is { Implicit: false };
                return MedBlipDemo.Run(
                    parse.GetValue(output)!, parse.GetValue(seed), parse.GetValue(vocab), Given(parse.GetResult(train)) ? parse.GetValue(train) : 360,
                    Given(parse.GetResult(test)) ? parse.GetValue(test) : 90, Given(parse.GetResult(steps)) ? parse.GetValue(steps) : 400,
                    Given(parse.GetResult(batch)) ? parse.GetValue(batch) : 24, cancellationToken);
            }

            if (parse.GetValue(arch) is "prior" or "prior3d")
            {
                return PriorDemo.Run(
                    parse.GetValue(output)!, parse.GetValue(seed), parse.GetValue(vocab), parse.GetResult(train) is null or { Implicit: true } ? 480 : parse.GetValue(train),
                    parse.GetResult(test) is null or { Implicit: true } ? 180 : parse.GetValue(test),
                    parse.GetResult(steps) is null or { Implicit: true } ? (int)Architectures.Prior.PriorRecipe.TinyStage1Steps : parse.GetValue(steps),
                    parse.GetResult(batch) is null or { Implicit: true } ? Architectures.Prior.PriorRecipe.TinyBatchSize : parse.GetValue(batch), parse.GetValue(arch) == "prior3d", cancellationToken);
            }

            if (parse.GetValue(arch) == "colipri")
            {
                // An option left out still has a (default) result: only an explicit one overrides COLIPRI's own defaults
                // (the steps are the colipri-demo recipe's).
                return ColipriDemo.Run(
                    parse.GetValue(output)!, parse.GetValue(seed), parse.GetValue(vocab), parse.GetResult(train) is { Implicit: false } ? parse.GetValue(train) : 2880,
                    parse.GetResult(test) is { Implicit: false } ? parse.GetValue(test) : 80, parse.GetResult(steps) is { Implicit: false } ? parse.GetValue(steps) : (int)TrainingRecipe.Resolve("colipri-demo").Steps,
                    parse.GetValue(batch), parse.GetValue(textModel), cancellationToken);
            }

            if (parse.GetValue(textModel) is not null)
            {
                throw new ArgumentException("--text-model is an option of --arch colipri.");
            }

            return Run(
            parse.GetValue(output)!, parse.GetValue(seed), parse.GetValue(vocab), parse.GetValue(train), parse.GetValue(test), parse.GetValue(epochs), cancellationToken);
        })));
        return command;
    }

    /// <summary>The zero-shot labels of the demo: MedBLIP's three label names, each with two prompt templates.</summary>
    public static IReadOnlyList<ZeroShotLabel> DiagnosisLabels { get; } = CognitiveDiagnosisNames.All
        .Select(d => new ZeroShotLabel(d.Code(), [$"The diagnosis is {d.LabelName()}.", $"Diagnosis: {d.LabelName()}."]))
        .ToArray();

    /// <summary>The demo's preprocessing: MedBLIP's recipe (min-max, aspect-keeping trilinear resize, centred zero pad) at 32^3.</summary>
    public static TransformPipeline Preprocessing(int size) => TrainingRecipe.Preprocessing(size);

    private static int Run(string outDir, int seed, string? vocabPath, int trainCount, int testCount, int epochs, CancellationToken cancellationToken)
    {
        if (trainCount < 64 || testCount < 3 || epochs < 1)
        {
            throw new ArgumentException("--train must be at least 64, --test at least 3 and --epochs at least 1.");
        }

        var clock = Stopwatch.StartNew();
        var tokenizer = WordPieceTextTokenizer.FromVocabularyFile(vocabPath ?? CliPaths.FindDefaultVocabulary());
        Directory.CreateDirectory(outDir);
        IReadOnlyList<SyntheticBrainCase> trainCases = [];
        IReadOnlyList<SyntheticBrainCase> testCases = [];
        var recipe = TrainingRecipe.Resolve("clip3d-demo") with { Epochs = epochs, Seed = seed };
        using var model = recipe.CreateModel(tokenizer);
        using var objective = recipe.CreateObjective(model);
        using var trainer = new Trainer(objective, recipe.CreateTrainerOptions(outputDirectory: null));
        var batchSize = recipe.Data.BatchSize;
        TrainingSummary? summary = null;
        double generationSeconds = 0, trainingSeconds = 0;
        var progressColumns = new ProgressColumn[] { new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn() };
        AnsiConsole.Progress().AutoClear(false).HideCompleted(false).Columns(progressColumns).Start(ctx =>
        {
            var generate = ctx.AddTask("Generating volumes", maxValue: trainCount + testCount);
            var report = new InlineProgress<int>(_ => generate.Increment(1));
            trainCases = SyntheticBrainDataset.Generate(trainCount, seed, progress: report, cancellationToken: cancellationToken);
            testCases = SyntheticBrainDataset.Generate(testCount, seed, firstIndex: trainCount, progress: report, cancellationToken: cancellationToken);
            generate.Value = generate.MaxValue;
            generationSeconds = clock.Elapsed.TotalSeconds;

            using var data = new PreparedTrainingData([.. trainCases.Select(c => c.Volume)], [.. trainCases.Select(c => c.Report)],
                v => model.PrepareVolumesForTraining(v, cancellationToken),
                new TrainingBatchCollator(model.Collator, new MedVlp.Data.TextCollation { MaxTokens = model.DualEncoder.MaxTextTokens }, recipe.Data.SentenceSubsetProbability, seed), batchSize, seed, cancellationToken);
            var training = ctx.AddTask("Training", maxValue: trainer.TotalSteps(data));
            summary = trainer.Fit(data, progress: new InlineProgress<TrainingProgress>(p =>
            {
                training.Value = p.Step;
                training.Description = string.Create(CultureInfo.InvariantCulture, $"Training (epoch {p.Epoch}/{epochs}, loss {p.Losses["total"]:F3})");
            }), cancellationToken: cancellationToken);
            trainingSeconds = clock.Elapsed.TotalSeconds - generationSeconds;
        });

        var stepsPerEpoch = trainCount / batchSize;
        var history = new LossHistory([.. summary!.History.Select(h => h.Losses["total"])], [.. summary.History.Select(h => h.LearningRate)], stepsPerEpoch, batchSize);
        var classifier = model.CreateZeroShotClassifier(DiagnosisLabels);
        var predictions = classifier.Classify(testCases.Select(c => c.Volume).ToArray(), cancellationToken);
        var correct = 0;
        var confusion = new int[3, 3];
        for (var n = 0; n < testCases.Count; n++)
        {
            var truth = (int)testCases[n].Diagnosis;
            confusion[truth, predictions[n].LabelIndex]++;
            correct += truth == predictions[n].LabelIndex ? 1 : 0;
        }

        var modelDir = Path.Combine(outDir, "model");
        model.Save(modelDir);
        DemoCharts.WriteLossCurve(Path.Combine(outDir, "loss.png"), history);
        DemoCharts.WriteMontage(Path.Combine(outDir, "montage.png"), testCases, predictions);

        var table = new Table().Title("held-out confusion (rows: truth, columns: zero-shot prediction)").AddColumn("truth");
        foreach (var d in CognitiveDiagnosisNames.All)
        {
            table.AddColumn(d.Code());
        }

        foreach (var d in CognitiveDiagnosisNames.All)
        {
            table.AddRow([d.Code(), .. Enumerable.Range(0, 3).Select(p => confusion[(int)d, p].ToString(CultureInfo.InvariantCulture))]);
        }

        AnsiConsole.Write(table);
        var accuracy = (double)correct / testCases.Count;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"generated {trainCount + testCount} volumes in {generationSeconds:F1} s; trained {history.Losses.Count} steps in {trainingSeconds:F1} s; total {clock.Elapsed.TotalSeconds:F1} s"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"final training loss {history.Losses.TakeLast(history.StepsPerEpoch).Average():F3} (epoch mean), logit scale {model.LogitScale:F1}"));
        Console.WriteLine($"model: {modelDir}");
        Console.WriteLine($"pictures: {Path.Combine(outDir, "loss.png")}, {Path.Combine(outDir, "montage.png")}");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"held-out zero-shot accuracy: {accuracy:F3} ({testCases.Count} volumes, 3 classes)"));
        return 0;
    }
}
