using System.Diagnostics;
using System.Globalization;
using MedVlp.Architectures.MedBlip;
using MedVlp.Modeling.Backbones;
using MedVlp.Synthetic;
using MedVlp.Losses;
using MedVlp.Text;
using MedVlp.Training;
using Spectre.Console;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Cli.Commands;

/// <summary>
/// <c>medvlp demo --arch medblip</c>: synthetic brain volumes with MedBLIP-style EHR text; the tiny MedBLIP's language
/// model is first trained on the EHR text alone (standing in for a pre-trained BioMedLM) and frozen, then the 3D
/// embedding, Q-Former and projections train on ITC(report) + ITC(QA) + LM; ends with the held-out contrastive and
/// generative zero-shot accuracies and saves the package (which <c>medvlp ask</c> answers).
/// </summary>
internal static class MedBlipDemo
{
    public static int Run(string outDir, int seed, string? vocabPath, int trainCount, int testCount, int steps, int batchSize, CancellationToken cancellationToken)
    {
        if (trainCount < batchSize || testCount < 3 || steps < 1 || batchSize < 2)
        {
            throw new ArgumentException("--train must be at least --batch, --test at least 3, --steps at least 1 and --batch at least 2.");
        }

        var clock = Stopwatch.StartNew();
        var tokenizer = WordPieceTextTokenizer.FromVocabularyFile(vocabPath ?? CliPaths.FindDefaultVocabulary());
        Directory.CreateDirectory(outDir);
        // Answer-only: with the language model frozen the prompt's loss is a constant without gradient, so only its cost would differ.
        var config = MedBlipConfig.Tiny(tokenizer.VocabularySize) with { ScorePrompt = false };
        using var model = VisionLanguageModel.Create(config, tokenizer, DemoCommand.Preprocessing(config.InputSize), seed);
        var medblip = (MedBlipModel)model.Module;
        var assistant = new MedBlipAssistant(model);
        var text = assistant.Text;
        IReadOnlyList<SyntheticBrainCase> trainCases = [];
        IReadOnlyList<SyntheticBrainCase> testCases = [];
        var history = new List<IReadOnlyDictionary<string, double>>();
        var lmHistory = new List<double>();
        var lmSteps = Math.Max(50, (int)Math.Ceiling(0.4 * steps));
        var trainDir = Path.Combine(outDir, "train");
        var progressColumns = new ProgressColumn[] { new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn() };
        AnsiConsole.Progress().AutoClear(false).HideCompleted(false).Columns(progressColumns).Start(ctx =>
        {
            var generate = ctx.AddTask("Generating volumes", maxValue: trainCount + testCount);
            var report = new InlineProgress<int>(_ => generate.Increment(1));
            trainCases = SyntheticBrainDataset.Generate(trainCount, seed, progress: report, cancellationToken: cancellationToken);
            testCases = SyntheticBrainDataset.Generate(testCount, seed, firstIndex: trainCount, progress: report, cancellationToken: cancellationToken);
            generate.Value = generate.MaxValue;

            // The batches carry each record as text (TrainingBatch.Reports): the objectives split it into EHR text and answer.
            using var data = new PreparedTrainingData([.. trainCases.Select(c => c.Volume)], [.. trainCases.Select(c => c.Ehr)],
                v => model.PrepareVolumesForTraining(v, cancellationToken),
                new TrainingBatchCollator(model.Collator, new MedVlp.Data.TextCollation { MaxTokens = config.MaxTextTokens }), batchSize, seed, cancellationToken);

            // Demo-only: the tiny language model starts random, where MedBLIP's is a pre-trained BioMedLM. It first learns the
            // EHR text's language (prompt -> answer, no image) for a few steps, and is then frozen as MedBLIP freezes BioMedLM.
            var pretrain = ctx.AddTask("Language model on EHR text", maxValue: lmSteps);
            medblip.Unfreeze(MedBlipModel.LanguageModelComponent);
            using (var warmStart = new LanguageModelWarmStartObjective(medblip.LanguageModel, text))
            using (var lmTrainer = new Trainer(warmStart, new TrainerOptions
            {
                Optimizer = new OptimizerSettings { LearningRate = 3e-3, WeightDecay = 0.01, Beta2 = 0.999, Epsilon = 1e-8 },
                Schedule = LearningRateSchedule.WarmupCosine(0.05),
                Steps = lmSteps,
                Seed = seed,
            }))
            {
                lmTrainer.Fit(data, progress: new InlineProgress<TrainingProgress>(p =>
                {
                    lmHistory.Add(p.Losses["total"]);
                    pretrain.Value = p.Step;
                    pretrain.Description = string.Create(CultureInfo.InvariantCulture, $"Language model on EHR text (loss {p.Losses["total"]:F2})");
                }), cancellationToken: cancellationToken);
            }

            medblip.Freeze(MedBlipModel.LanguageModelComponent);

            // MedBLIP proper (recipe "medblip"): 3D embedding, Q-Former and projections on ITC(report) + ITC(QA) + LM.
            var recipe = TrainingRecipe.Resolve("medblip-demo") with { Steps = steps, Seed = seed, Data = new DataSettings { BatchSize = batchSize } };
            var training = ctx.AddTask("Training MedBLIP", maxValue: steps);
            using var objective = new MedBlipObjective(model);
            using var trainer = new Trainer(objective, recipe.CreateTrainerOptions(trainDir));
            trainer.Fit(data, progress: new InlineProgress<TrainingProgress>(p =>
            {
                history.Add(p.Losses);
                training.Value = p.Step;
                training.Description = string.Create(CultureInfo.InvariantCulture,
                    $"Training MedBLIP (itc {p.Losses["itc_report"]:F2} + {p.Losses["itc_qa"]:F2}, lm {p.Losses["lm"]:F2})");
            }), cancellationToken: cancellationToken);
        });
        medblip.eval();

        var contexts = testCases.Select(c => (string?)MedBlipText.Split(c.Ehr).Context).ToArray();
        var volumes = testCases.Select(c => c.Volume).ToArray();
        var textOnly = TextOnlyAccuracy(medblip, text, testCases, contexts);
        var contrastive = assistant.DiagnoseContrastive(volumes);
        var generative = assistant.DiagnoseGenerative(volumes, contexts, cancellationToken: cancellationToken);
        var contrastiveAccuracy = testCases.Select((c, n) => c.Diagnosis == contrastive[n] ? 1.0 : 0).Average();
        var generativeAccuracy = testCases.Select((c, n) => c.Diagnosis == generative[n].Diagnosis ? 1.0 : 0).Average();
        var unmatched = generative.Count(g => g.Diagnosis is null);

        var modelDir = Path.Combine(outDir, "model");
        model.Save(modelDir);
        WriteLossPlot(Path.Combine(outDir, "loss.png"), history, lmHistory);
        var table = new Table().Title("held-out generative confusion (rows: truth, columns: answer)").AddColumn("truth");
        foreach (var d in CognitiveDiagnosisNames.All)
        {
            table.AddColumn(d.Code());
        }

        table.AddColumn("unmatched");
        foreach (var d in CognitiveDiagnosisNames.All)
        {
            var rows = generative.Where((g, n) => testCases[n].Diagnosis == d).ToArray();
            table.AddRow([d.Code(), .. CognitiveDiagnosisNames.All.Select(p => rows.Count(g => g.Diagnosis == p).ToString(CultureInfo.InvariantCulture)), rows.Count(g => g.Diagnosis is null).ToString(CultureInfo.InvariantCulture)]);
        }

        AnsiConsole.Write(table);
        var last = history.TakeLast(Math.Min(20, history.Count)).ToArray();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"trained the language model {lmSteps} steps and MedBLIP {steps} steps (batch {batchSize}) in {clock.Elapsed.TotalSeconds:F1} s; last 20 steps: itc_report {last.Average(h => h["itc_report"]):F3}, itc_qa {last.Average(h => h["itc_qa"]):F3}, lm {last.Average(h => h["lm"]):F3}"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"text-only language model (EHR prompt, no image): {textOnly:F3}"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"example answer: \"{generative[0].Answer}\" (truth: {testCases[0].Diagnosis.LabelName()})"));
        Console.WriteLine($"model: {modelDir}");
        Console.WriteLine($"pictures: {Path.Combine(outDir, "loss.png")}");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"held-out contrastive zero-shot accuracy: {contrastiveAccuracy:F3} ({testCases.Count} volumes, 3 classes)"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"held-out generative zero-shot accuracy: {generativeAccuracy:F3} ({testCases.Count} volumes, 3 classes, {unmatched} unmatched)"));
        return 0;
    }

    private static double TextOnlyAccuracy(MedBlipModel model, MedBlipText text, IReadOnlyList<SyntheticBrainCase> cases, string?[] contexts)
    {
        var correct = 0;
        for (var n = 0; n < cases.Count; n++)
        {
            using var scope = NewDisposeScope();
            var ids = tensor(text.EncodePrompt(MedBlipText.Prompt(contexts[n] ?? "")).Select(i => (long)i).ToArray()).unsqueeze(0);
            var answer = text.Decode(model.LanguageModel.GenerateGreedy(ids, null, null, 12, MedBlipText.EndOfText).data<long>().ToArray());
            correct += MedBlipText.ParseDiagnosis(answer) == cases[n].Diagnosis ? 1 : 0;
        }

        return (double)correct / cases.Count;
    }

    private static void WriteLossPlot(string path, List<IReadOnlyDictionary<string, double>> history, List<double> lmHistory)
    {
        var plot = new ScottPlot.Plot();
        foreach (var term in new[] { "itc_report", "itc_qa", "lm", "total" })
        {
            var ys = history.Select(h => h[term]).ToArray();
            var line = plot.Add.Scatter(Enumerable.Range(1, ys.Length).Select(i => (double)i).ToArray(), ys);
            line.LegendText = term;
            line.MarkerSize = 0;
        }

        var pre = plot.Add.Scatter(Enumerable.Range(1, lmHistory.Count).Select(i => (double)i).ToArray(), lmHistory.ToArray());
        pre.LegendText = "language model pre-training (text only)";
        pre.MarkerSize = 0;
        pre.LinePattern = ScottPlot.LinePattern.Dotted;
        plot.Title("MedBLIP demo: loss per term");
        plot.XLabel("step");
        plot.YLabel("loss");
        plot.ShowLegend();
        plot.SavePng(path, 900, 500);
    }

    /// <summary>
    /// Demo-only warm start of the tiny random language model (MedBLIP's is a pre-trained BioMedLM): causal language
    /// modelling of "EHR text Question: ... Answer: X&lt;|endoftext|&gt;", the answer scored (the vocabulary projection of 50257
    /// rows at every prompt position would dominate the CPU time; the prompt still learns through attention). No image.
    /// </summary>
    private sealed class LanguageModelWarmStartObjective(Gpt2LMHeadModel languageModel, MedBlipText text) : TrainingObjective(languageModel, new NoLoss())
    {
        public override FeatureSet Encode(TrainingBatch batch)
        {
            var reports = batch.Reports ?? throw new ArgumentException("The warm start needs the records as text.", nameof(batch));
            var rows = reports.Select(r =>
            {
                var (context, answer) = MedBlipText.Split(r);
                return (Prompt: text.EncodePrompt(MedBlipText.Prompt(context)), Answer: text.EncodeAnswer(answer ?? throw new ArgumentException($"\"{r}\" has no diagnosis.", nameof(batch))));
            }).ToArray();
            var length = rows.Max(r => r.Prompt.Length + r.Answer.Length);
            var ids = new long[rows.Length * length];
            var mask = new long[rows.Length * length];
            var labels = new long[rows.Length * length];
            Array.Fill(ids, MedBlipText.EndOfText);
            Array.Fill(labels, Gpt2LMHeadModel.IgnoreIndex);
            for (var n = 0; n < rows.Length; n++)
            {
                var (prompt, answer) = rows[n];
                for (var t = 0; t < prompt.Length + answer.Length; t++)
                {
                    var id = t < prompt.Length ? prompt[t] : answer[t - prompt.Length];
                    ids[(n * length) + t] = id;
                    mask[(n * length) + t] = 1;
                    labels[(n * length) + t] = t < prompt.Length ? Gpt2LMHeadModel.IgnoreIndex : id;
                }
            }

            using var scope = NewDisposeScope();
            var hidden = languageModel.Transformer.forward(tensor(ids, [rows.Length, length]), null, tensor(mask, [rows.Length, length]));
            var targets = tensor(labels, [rows.Length, length]).narrow(1, 1, length - 1).reshape(-1);
            var scored = targets.ne(Gpt2LMHeadModel.IgnoreIndex).nonzero().squeeze(1);
            var states = hidden.narrow(1, 0, length - 1).reshape(-1, hidden.shape[2]).index_select(0, scored);
            var nll = nn.functional.cross_entropy(nn.functional.linear(states, languageModel.OutputEmbeddingWeight), targets.index_select(0, scored), reduction: nn.Reduction.None);
            var row = scored.div(length - 1, rounding_mode: RoundingMode.floor);
            var features = new FeatureSet(
            [
                new("lm_sum", zeros(rows.Length).index_add(0, row, nll, 1)),
                new("lm_count", zeros(rows.Length).index_add(0, row, ones_like(nll), 1)),
            ]);
            return features.MoveToOuter(scope);
        }

        public override LossOutput ComputeLoss(FeatureSet features)
        {
            using var scope = NewDisposeScope();
            var loss = features["lm_sum"].sum() / features["lm_count"].sum().clamp_min(1);
            return new LossOutput(loss, [new("lm", loss.alias())]).MoveToOuter(scope);
        }
    }

    /// <summary>The warm start's loss module: nothing to learn.</summary>
    private sealed class NoLoss : nn.Module
    {
        public NoLoss()
            : base(nameof(NoLoss))
        {
        }
    }
}
