using System.Diagnostics;
using System.Globalization;
using MedVlp.Architectures.MedBlip;
using MedVlp.Modeling;
using MedVlp.Modeling.Backbones;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Benchmarks;

/// <summary>
/// <c>-- medblip [threads] [repeats]</c>: the tiny MedBLIP (the demo's sizes) timed as benchmarks/reference/medblip_torch.py
/// times the PyTorch reference of tests/golden/make_medblip_golden.py at the same sizes, batch and token counts: one
/// training step (ITC(report) + ITC(QA) + LM, backward, clipping, AdamW over the trainable parts) and greedy decoding of
/// one volume (tokens per second) with the key/value cache and without it (the whole sequence recomputed per token).
/// </summary>
internal static class MedBlipSideBySide
{
    // The shapes both sides use: batch, report / QA / prompt / answer tokens, prompt and new tokens when decoding.
    private const int Batch = 24, ReportTokens = 40, QaTokens = 20, PromptTokens = 45, AnswerTokens = 6, DecodePrompt = 45, NewTokens = 32;

    public static void Run(int threads, int repeats)
    {
        set_num_threads(threads);
        Console.WriteLine($"MedVlp MedBLIP (tiny), TorchSharp on libtorch, {threads} thread(s), .NET {Environment.Version}");
        var config = MedBlipConfig.Tiny();
        using var model = (MedBlipModel)ModelRegistry.Create(config);
        manual_seed(0);
        var s = config.InputSize;
        using var volumes = rand([Batch, 1, s, s, s]);
        using var reportIds = randint(1000, 2000, [Batch, ReportTokens], dtype: ScalarType.Int64);
        using var reportMask = ones(Batch, ReportTokens, dtype: ScalarType.Int64);
        using var qaIds = randint(1000, 2000, [Batch, QaTokens], dtype: ScalarType.Int64);
        using var qaMask = ones(Batch, QaTokens, dtype: ScalarType.Int64);
        using var promptIds = randint(1000, 2000, [Batch, PromptTokens], dtype: ScalarType.Int64);
        using var promptMask = ones(Batch, PromptTokens, dtype: ScalarType.Int64);
        using var answerIds = randint(1000, 2000, [Batch, AnswerTokens], dtype: ScalarType.Int64);
        using var answerMask = ones(Batch, AnswerTokens, dtype: ScalarType.Int64);
        var batch = new MedBlipBatch(volumes, reportIds, reportMask, qaIds, qaMask, promptIds, promptMask, answerIds, answerMask);
        var parameters = model.TrainableParameters().Select(p => p.Parameter).ToArray();
        using var optimizer = optim.AdamW(parameters, lr: 1e-4, weight_decay: 1e-4);
        model.train();
        var step = Time(
            () =>
            {
                using var scope = NewDisposeScope();
                optimizer.zero_grad();
                using var loss = model.ComputeLoss(batch);
                loss.Total.backward();
                nn.utils.clip_grad_norm_(parameters, 1.0);
                optimizer.step();
            },
            repeats);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"train step: batch {Batch}, {s}^3, prompt scored, {parameters.Sum(p => p.numel()):N0} trainable parameters: median {step.Median:F1} ms (min {step.Min:F1})"));

        model.eval();
        using var one = volumes.narrow(0, 0, 1).clone();
        IReadOnlyList<int> prompt = [.. promptIds[0].narrow(0, 0, DecodePrompt).data<long>().Select(i => (int)i)];
        var cached = Time(() => model.GenerateGreedy(one, [prompt], NewTokens, endOfText: -1), repeats);
        var uncached = Time(() => GenerateWithoutCache(model, one, prompt), repeats);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"greedy, {DecodePrompt} prompt + {config.QFormer.QueryTokens} image tokens, {NewTokens} new: with cache {NewTokens / cached.Median * 1000:F1} tokens/s (median {cached.Median:F1} ms), without {NewTokens / uncached.Median * 1000:F1} tokens/s (median {uncached.Median:F1} ms)"));
    }

    /// <summary>Greedy decoding that recomputes the whole sequence for every new token (no key/value cache).</summary>
    private static long[] GenerateWithoutCache(MedBlipModel model, Tensor volume, IReadOnlyList<int> prompt)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var lm = model.LanguageModel;
        var image = model.LanguageImageTokens(model.EncodeQueries(volume));
        var embeds = cat([lm.Transformer.TokenEmbeddings.forward(tensor(prompt.Select(i => (long)i).ToArray()).unsqueeze(0)), image], 1);
        var result = new long[NewTokens];
        for (var n = 0; n < NewTokens; n++)
        {
            using var inner = NewDisposeScope();
            var hidden = lm.Transformer.forward(null, embeds, null);
            var next = nn.functional.linear(hidden.select(1, -1), lm.OutputEmbeddingWeight).argmax(-1);
            result[n] = next.item<long>();
            embeds = inner.MoveToOuter(cat([embeds, lm.Transformer.TokenEmbeddings.forward(next.unsqueeze(0))], 1));
        }

        return result;
    }

    private static (double Median, double Min) Time(Action action, int repeats)
    {
        action();
        action();
        var times = new List<double>();
        for (var n = 0; n < repeats; n++)
        {
            var clock = Stopwatch.StartNew();
            action();
            times.Add(clock.Elapsed.TotalMilliseconds);
        }

        times.Sort();
        return (times[times.Count / 2], times[0]);
    }
}
