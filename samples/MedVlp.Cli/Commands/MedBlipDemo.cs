using System.Diagnostics;
using System.Globalization;
using MedVlp.Architectures.MedBlip;
using MedVlp.Modeling.Backbones;
using MedVlp.Synthetic;
using MedVlp.Text;
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
        Tensor? trainVolumes = null;
        var history = new List<IReadOnlyDictionary<string, double>>();
        var lmHistory = new List<double>();
        var lmSteps = Math.Max(50, steps / 2);
        var progressColumns = new ProgressColumn[] { new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn() };
        AnsiConsole.Progress().AutoClear(false).HideCompleted(false).Columns(progressColumns).Start(ctx =>
        {
            var generate = ctx.AddTask("Generating volumes", maxValue: trainCount + testCount);
            var report = new InlineProgress<int>(_ => generate.Increment(1));
            trainCases = SyntheticBrainDataset.Generate(trainCount, seed, progress: report, cancellationToken: cancellationToken);
            testCases = SyntheticBrainDataset.Generate(testCount, seed, firstIndex: trainCount, progress: report, cancellationToken: cancellationToken);
            generate.Value = generate.MaxValue;
            trainVolumes = assistant.Prepare([.. trainCases.Select(c => c.Volume)]).DetachFromDisposeScope();

            var random = new Random(seed);
            manual_seed(seed);
            var pretrain = ctx.AddTask("Language model on EHR text", maxValue: lmSteps);
            PretrainLanguageModel(medblip, text, trainCases, lmSteps, batchSize, random, lmHistory, pretrain, cancellationToken);

            var training = ctx.AddTask("Training MedBLIP", maxValue: steps);
            using var trainer = new MedBlipTrainer(medblip, new MedBlipTrainerOptions { LearningRate = 1e-3 });
            var order = new List<int>();
            for (var step = 0; step < steps; step++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (order.Count < batchSize)
                {
                    order.AddRange(Enumerable.Range(0, trainCount).OrderBy(_ => random.Next()));
                }

                var rows = order.Take(batchSize).ToArray();
                order.RemoveRange(0, batchSize);
                using var scope = NewDisposeScope();
                var batch = text.Batch(trainVolumes.index_select(0, tensor(rows.Select(r => (long)r).ToArray())), [.. rows.Select(r => trainCases[r].Ehr)]);
                var terms = trainer.Step(batch, trainer.LearningRateAt(step, steps));
                history.Add(terms);
                training.Value = step + 1;
                training.Description = string.Create(CultureInfo.InvariantCulture,
                    $"Training MedBLIP (itc {terms["itc_report"]:F2} + {terms["itc_qa"]:F2}, lm {terms["lm"]:F2})");
            }
        });
        trainVolumes?.Dispose();
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

    /// <summary>Trains the tiny GPT-2 as a causal language model on "EHR Question: ... Answer: X&lt;|endoftext|&gt;" (the stand-in
    /// for a pre-trained clinical language model), then freezes it again.</summary>
    private static void PretrainLanguageModel(MedBlipModel model, MedBlipText text, IReadOnlyList<SyntheticBrainCase> cases, int steps, int batchSize, Random random,
        List<double> history, ProgressTask task, CancellationToken cancellationToken)
    {
        var sequences = cases.Select(c =>
        {
            var (context, answer) = MedBlipText.Split(c.Ehr);
            return (Prompt: text.EncodePrompt(MedBlipText.Prompt(context)).Select(i => (long)i).ToArray(), Answer: text.EncodeAnswer(answer!).Select(i => (long)i).ToArray());
        }).ToArray();
        model.Unfreeze(MedBlipModel.LanguageModelComponent);
        var lm = model.LanguageModel;
        lm.train();
        var parameters = lm.parameters().ToArray();
        using (var optimizer = optim.AdamW(parameters, lr: 3e-3, weight_decay: 0.01))
        {
            for (var step = 0; step < steps; step++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                using var scope = NewDisposeScope();
                var rows = Enumerable.Range(0, batchSize).Select(_ => sequences[random.Next(sequences.Length)]).ToArray();
                var length = rows.Max(r => r.Prompt.Length + r.Answer.Length);
                var ids = new long[rows.Length * length];
                var mask = new long[rows.Length * length];
                var labels = new long[rows.Length * length];
                Array.Fill(ids, MedBlipText.EndOfText);
                Array.Fill(labels, Gpt2LMHeadModel.IgnoreIndex);
                for (var n = 0; n < rows.Length; n++)
                {
                    rows[n].Prompt.CopyTo(ids, n * length);
                    rows[n].Answer.CopyTo(ids, (n * length) + rows[n].Prompt.Length);
                    rows[n].Answer.CopyTo(labels, (n * length) + rows[n].Prompt.Length);
                    Array.Fill(mask, 1, n * length, rows[n].Prompt.Length + rows[n].Answer.Length);
                }

                var idTensor = tensor(ids, [rows.Length, length]);
                var maskTensor = tensor(mask, [rows.Length, length]);
                // The answer is what is scored (the vocabulary projection of 50257 rows at every prompt position would
                // dominate the CPU time); the prompt's tokens still learn through attention.
                var targets = tensor(labels, [rows.Length, length]).narrow(1, 1, length - 1).reshape(-1);
                var scored = targets.ne(Gpt2LMHeadModel.IgnoreIndex).nonzero().squeeze(1);
                foreach (var group in optimizer.ParamGroups)
                {
                    group.LearningRate = 3e-3 * 0.5 * (1 + Math.Cos(Math.PI * step / steps));
                }

                optimizer.zero_grad();
                var hidden = lm.Transformer.forward(idTensor, null, maskTensor);
                var states = hidden.narrow(1, 0, length - 1).reshape(-1, hidden.shape[2]).index_select(0, scored);
                var loss = nn.functional.cross_entropy(nn.functional.linear(states, lm.Transformer.TokenEmbeddings.weight!), targets.index_select(0, scored));
                loss.backward();
                nn.utils.clip_grad_norm_(parameters, 1.0);
                optimizer.step();
                history.Add(loss.ToDouble());
                task.Value = step + 1;
                task.Description = string.Create(CultureInfo.InvariantCulture, $"Language model on EHR text (loss {history[^1]:F2})");
            }
        }

        foreach (var p in parameters)
        {
            p.grad?.Dispose();
        }

        model.Freeze(MedBlipModel.LanguageModelComponent);
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
        foreach (var term in new[] { "itc_report", "itc_qa", "lm", "loss" })
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
}
