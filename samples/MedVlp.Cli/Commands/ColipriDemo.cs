using System.Diagnostics;
using System.Globalization;
using MedVlp.Architectures.Colipri;
using MedVlp.Modeling.Blocks;
using MedVlp.Synthetic;
using MedVlp.Text;
using MedVlp.Volumes;
using MedVlp.Volumes.Transforms;
using Spectre.Console;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MedVlp.Cli.Commands;

/// <summary>
/// <c>medvlp demo --arch colipri</c>: pre-trains a tiny COLIPRI on synthetic chest CTs with all four objectives (a
/// quarter of the training volumes image-only) and reports held-out zero-shot metrics per finding.
/// </summary>
internal static class ColipriDemo
{
    /// <summary>The demo's input: the colipri preset at a CPU-sized resolution (SAR, 6 mm, HU window, 64^3).</summary>
    public static TransformPipeline Preprocessing() => new(
    [
        new Reorient("SAR"),
        new ResampleToSpacing(6) { Interpolation = Interpolation.Trilinear, FillWithMinimum = true },
        new Clamp(-1000, 1000),
        new ScaleIntensityRange { InputMin = -1000, InputMax = 1000, OutputMin = -1, OutputMax = 1 },
        new CropOrPad { Size = new VolumeShape(64, 64, 64), FillValue = -1, Centering = CropOrPadCentering.ExtraBefore },
    ], "colipri-tiny");

    /// <summary>Training sentences of each finding for the opposite-sentence loss (worded unlike the zero-shot prompts).</summary>
    public static IReadOnlyList<FindingDefinition> Findings { get; } =
    [
        new("lung_nodule", ["nodule"], "There is a pulmonary nodule.", "There is no pulmonary nodule."),
        new("pleural_effusion", ["effusion"], "There is a pleural effusion.", "There is no pleural effusion."),
        new("cardiomegaly", ["cardiomegaly", "heart", "cardiac"], "The heart is enlarged.", "The heart is not enlarged."),
        new("emphysema", ["emphysema"], "There is emphysema.", "There is no emphysema."),
        new("consolidation", ["consolidation"], "There is a consolidation.", "There is no consolidation."),
    ];

    /// <summary>Peak learning rate of the demo's AdamW (warm-up over a tenth of the steps, then cosine decay).</summary>
    public const double LearningRate = 2e-3;

    /// <summary>Global gradient-norm clip.</summary>
    public const double GradientClip = 5;

    public static int Run(string outDir, int seed, string? vocabPath, int trainCount, int testCount, int steps, int batchSize, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        Directory.CreateDirectory(outDir);
        var tokenizer = WordPieceTextTokenizer.FromVocabularyFile(vocabPath ?? CliPaths.FindDefaultVocabulary());
        var preprocessing = Preprocessing();
        var (train, test) = Generate(seed, trainCount, testCount, preprocessing, cancellationToken);

        random.manual_seed(seed);
        // The decoder reads and writes only the tokens of the training reports (a MedVlp option for small models).
        var config = ColipriConfig.Tiny(tokenizer.VocabularySize) with
        {
            ReportVocabulary = ColipriConfig.CorpusVocabulary(tokenizer, train.Select(c => c.Case.Report), tokenizer.Inner.UnknownTokenId),
        };
        var model = new ColipriModel(config);
        using var package = VisionLanguageModel.FromModule(model, new Dictionary<string, TextTokenizer> { ["text"] = tokenizer }, "text", preprocessing);
        var labeler = new ReportFindingLabeler(Findings);
        using var objective = new ColipriObjective(model, tokenizer, Findings);
        var noDecayNames = NoWeightDecay.ParameterNames(model);
        var decay = model.named_parameters().Where(p => p.parameter.requires_grad && !noDecayNames.Contains(p.name)).Select(p => p.parameter).ToList();
        var noDecay = model.named_parameters().Where(p => p.parameter.requires_grad && noDecayNames.Contains(p.name)).Select(p => p.parameter).ToList();
        using var optimizer = optim.AdamW(
            [
                new AdamW.ParamGroup { Parameters = decay, Options = new AdamW.Options { weight_decay = 0.05 } },
                new AdamW.ParamGroup { Parameters = noDecay, Options = new AdamW.Options { weight_decay = 0 } },
            ],
            lr: LearningRate);
        var generator = new Generator((ulong)seed);
        var order = new Random(seed);
        var losses = new List<IReadOnlyDictionary<string, double>>();
        var warmup = Math.Max(1, steps / 10);

        // A quarter of the training volumes are image-only (their reports are withheld): they train masked image modelling.
        var paired = train.Select((_, i) => i % 4 != 3).ToArray();
        model.train();
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask("pre-training tiny COLIPRI", maxValue: steps);
                var indices = Enumerable.Range(0, train.Count).ToArray();
                var cursor = indices.Length;
                for (var step = 0; step < steps; step++)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    if (cursor + batchSize > indices.Length)
                    {
                        order.Shuffle(indices);
                        cursor = 0;
                    }

                    var batchIndices = indices.Skip(cursor).Take(batchSize).ToArray();
                    cursor += batchSize;
                    var lr = LearningRate * (step < warmup ? (step + 1.0) / warmup : 0.5 * (1 + Math.Cos(Math.PI * (step - warmup) / Math.Max(1, steps - warmup))));
                    foreach (var g in optimizer.ParamGroups)
                    {
                        g.LearningRate = lr;
                    }

                    using var scope = NewDisposeScope();
                    var batch = MakeBatch(batchIndices.Select(i => train[i]).ToArray(), batchIndices.Select(i => paired[i]).ToArray(), tokenizer, labeler, config.MaxTextTokens);
                    optimizer.zero_grad();
                    using var output = objective.Compute(batch, generator);
                    output.Total.backward();
                    nn.utils.clip_grad_norm_(model.parameters(), GradientClip);
                    optimizer.step();
                    losses.Add(output.ToScalars());
                    task.Value = step + 1;
                    task.Description = string.Create(CultureInfo.InvariantCulture, $"pre-training tiny COLIPRI  loss {output.Total.ToDouble():F3}");
                }
            });

        model.eval();
        var zeroShot = new FindingZeroShot(model, tokenizer, ChestFindingExtensions.All.Select(f => new FindingPrompts(f.Key(), [f.PositivePrompt()], [f.NegativePrompt()])).ToArray());
        var embeddings = new List<float[]>();
        var generated = new List<long[]>();
        using (no_grad())
        {
            foreach (var chunk in test.Chunk(16))
            {
                using var scope = NewDisposeScope();
                var volumes = stack(chunk.Select(c => c.Input).ToArray());
                var tokens = model.EncodeImageTokens(volumes);
                var e = model.Pool(tokens);
                for (var i = 0; i < chunk.Length; i++)
                {
                    embeddings.Add(e[i].data<float>().ToArray());
                    generated.Add(model.GenerateReport(tokens.narrow(0, i, 1), tokenizer.ClassificationTokenId, tokenizer.SeparatorTokenId, config.MaxTextTokens - 1, cancellationToken));
                }
            }
        }

        // Report-level finding F1: the labeler reads each generated report; a finding counts as reported when stated.
        var reported = generated.Select(ids => labeler.Label(tokenizer.Decode(ids.Select(i => (int)i)))).ToArray();
        var reportMetrics = Findings.Select((f, k) => F1(reported.Select(r => r[k] == 1).ToArray(), test.Select(c => c.Case.Findings[ChestFindingExtensions.All[k]]).ToArray())).ToArray();
        var tp = reportMetrics.Sum(m => m.Tp);
        var microF1 = 2.0 * tp / Math.Max(1, (2 * tp) + reportMetrics.Sum(m => m.Fp) + reportMetrics.Sum(m => m.Fn));
        var evaluation = zeroShot.Evaluate(embeddings, test.Select(c => ChestFindingExtensions.All.Select(f => c.Case.Findings[f]).ToArray()).ToArray());
        EvaluateCommand.Print(evaluation, test.Count);
        var modelDir = Path.Combine(outDir, "model");
        package.Save(modelDir);
        FindingPromptsFile.Save(Path.Combine(outDir, "findings.json"), zeroShot.Findings);
        Console.WriteLine($"example generated report (held-out volume 0): {tokenizer.Decode(generated[0].Select(i => (int)i))}");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"generated reports: finding F1 {microF1:F3} (micro), per finding {string.Join(", ", Findings.Select((f, k) => $"{f.Name} {reportMetrics[k].F1:F2}"))}"));
        Console.WriteLine($"saved the model package to {modelDir} and the zero-shot prompts to {Path.Combine(outDir, "findings.json")}");
        var last = losses.TakeLast(20).ToArray();
        foreach (var term in last[0].Keys)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"final {term}: {last.Average(l => l[term]):F4} (first steps {losses.Take(20).Average(l => l.TryGetValue(term, out var v) ? v : double.NaN):F4})"));
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"trained {steps} steps in {clock.Elapsed.TotalSeconds:F0} s"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"held-out zero-shot macro AUROC: {evaluation.MacroAuroc:F3} ({test.Count} volumes, {evaluation.Findings.Count} findings)"));
        return 0;
    }

    internal static ColipriBatch MakeBatch(PreparedCase[] cases, bool[] paired, TextTokenizer tokenizer, ReportFindingLabeler labeler, int maxTokens)
    {
        var volumes = stack(cases.Select(c => c.Input).ToArray());
        var encoded = tokenizer.EncodeBatch(cases.Select(c => c.Case.Report).ToArray(), maxTokens);
        var ids = tensor(encoded.Ids.ToArray(), [encoded.BatchSize, encoded.SequenceLength]);
        var mask = tensor(encoded.AttentionMask.ToArray(), [encoded.BatchSize, encoded.SequenceLength]);
        var labels = tensor(cases.SelectMany(c => labeler.Label(c.Case.Report)).ToArray(), [cases.Length, labeler.Findings.Count]);
        return new ColipriBatch(volumes, ids, mask, tensor(paired), labels);
    }

    private static (List<PreparedCase> Train, List<PreparedCase> Test) Generate(int seed, int trainCount, int testCount, TransformPipeline preprocessing, CancellationToken cancellationToken)
    {
        var prepared = new PreparedCase[trainCount + testCount];
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask("synthetic chest CTs", maxValue: prepared.Length);
                var done = 0;
                Parallel.For(0, prepared.Length, new ParallelOptions { CancellationToken = cancellationToken }, n =>
                {
                    var c = SyntheticChestDataset.GenerateCase(seed, n);
                    var input = preprocessing.Apply(c.Volume);
                    var t = tensor(input.GetFrame(0).ToArray(), [1, input.Shape.Z, input.Shape.Y, input.Shape.X]).DetachFromDisposeScope();
                    prepared[n] = new PreparedCase(c, t);
                    task.Value = Interlocked.Increment(ref done);
                });
            });
        return ([.. prepared.Take(trainCount)], [.. prepared.Skip(trainCount)]);
    }

    private static (int Tp, int Fp, int Fn, double F1) F1(bool[] predicted, bool[] truth)
    {
        var tp = predicted.Zip(truth).Count(p => p.First && p.Second);
        var fp = predicted.Zip(truth).Count(p => p.First && !p.Second);
        var fn = predicted.Zip(truth).Count(p => !p.First && p.Second);
        return (tp, fp, fn, 2.0 * tp / Math.Max(1, (2 * tp) + fp + fn));
    }

    internal sealed record PreparedCase(SyntheticChestCase Case, Tensor Input);
}
