using System.Text.Json;
using MedVlp.Inference.Generation;
using MedVlp.Modeling.Backbones;
using MedVlp.Serialization;
using MedVlp.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Tests.Generation;

/// <summary>The generation engine against tests/golden/make_generation_golden.py (Hugging Face's algorithms in PyTorch, a tiny GPT-2 with fixed weights, no cache).</summary>
[Collection(nameof(TorchRandomState))] // builds randomly initialised GPT-2s: libtorch's global generator is shared
public sealed class GenerationGoldenTests
{
    private static readonly Lazy<Dictionary<string, Tensor>> Golden = new(() => GoldenTensors.Load("generation_golden.safetensors"));

    private static readonly Lazy<JsonElement> Cases = new(() => JsonDocument.Parse(File.ReadAllText(TestData.Golden("generation_golden.json"))).RootElement);

    private static Tensor G(string key) => Golden.Value.TryGetValue(key, out var t) ? t : throw new KeyNotFoundException($"golden key {key}");

    internal static Gpt2LMHeadModel GoldenModel()
    {
        var model = new Gpt2LMHeadModel(new Gpt2Config { VocabSize = 48, NPositions = 32, NEmbd = 16, NLayer = 2, NHead = 2, EmbdPdrop = 0, ResidPdrop = 0, AttnPdrop = 0 });
        var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var golden = Golden.Value.Keys.Where(k => k.StartsWith("param/", StringComparison.Ordinal)).Select(k => k[6..]).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(golden, parameters.Keys.Order(StringComparer.Ordinal).ToArray());
        using (no_grad())
        {
            foreach (var (key, p) in parameters)
            {
                p.copy_(G("param/" + key));
            }
        }

        model.eval();
        return model;
    }

    internal static Gpt2LanguageHead Head(Gpt2LMHeadModel model, JsonElement c)
    {
        var prompt = c.GetProperty("prompt").EnumerateArray().Select(e => e.GetInt64()).ToArray();
        var embeds = c.TryGetProperty("embeds", out var e) ? G("input/" + e.GetString()) : null;
        long? eos = c.GetProperty("eos").ValueKind == JsonValueKind.Null ? null : c.GetProperty("eos").GetInt64();
        using var scope = NewDisposeScope();
        return new Gpt2LanguageHead(model, prompt.Length == 0 ? null : tensor(prompt), embeds, eos);
    }

    private static double Repetition(JsonElement c) => c.TryGetProperty("repetition", out var r) ? r.GetDouble() : 1.0;

    private static int[] Expected(JsonElement c) => [.. c.GetProperty("expected").EnumerateArray().Select(e => e.GetInt32())];

    [Fact]
    public void GreedyTokensEqualTheReference()
    {
        using var model = GoldenModel();
        var generator = new TextGenerator();
        var cases = Cases.Value.GetProperty("cases").GetProperty("greedy").EnumerateArray().ToArray();
        Assert.Equal(5, cases.Length);
        foreach (var c in cases)
        {
            using var head = Head(model, c);
            var result = generator.Generate(head, new GenerationOptions { MaxNewTokens = c.GetProperty("max_new").GetInt32(), RepetitionPenalty = Repetition(c) });
            Assert.Equal(Expected(c), result.TokenIds);
            Assert.Equal(result.TokenIds.Count < c.GetProperty("max_new").GetInt32() ? GenerationFinishReason.EndOfSequence : GenerationFinishReason.Length, result.FinishReason);
            Assert.Null(result.Score);
        }
    }

    [Fact]
    public void BeamSearchTokensAndScoresEqualTheReference()
    {
        using var model = GoldenModel();
        var generator = new TextGenerator();
        var cases = Cases.Value.GetProperty("cases").GetProperty("beam").EnumerateArray().ToArray();
        Assert.Equal(5, cases.Length);
        foreach (var c in cases)
        {
            using var head = Head(model, c);
            var options = new GenerationOptions
            {
                MaxNewTokens = c.GetProperty("max_new").GetInt32(),
                NumBeams = c.GetProperty("beams").GetInt32(),
                LengthPenalty = c.GetProperty("length_penalty").GetDouble(),
                EarlyStopping = c.GetProperty("early").GetBoolean(),
                RepetitionPenalty = Repetition(c),
            };
            var result = generator.Generate(head, options);
            Assert.Equal(Expected(c), result.TokenIds);
            Assert.Equal(c.GetProperty("score").GetDouble(), result.Score!.Value, 1e-5);
        }

        // The beams differ from greedy where the reference's do (otherwise the beam cases would check nothing new).
        var greedyFirst = Expected(Cases.Value.GetProperty("cases").GetProperty("greedy")[1]);
        Assert.NotEqual(greedyFirst, Expected(cases[1]));
    }

    [Fact]
    public void WarpedDistributionsEqualTheReference()
    {
        var logits = G("input/logits");
        var cases = Cases.Value.GetProperty("cases").GetProperty("warp").EnumerateArray().ToArray();
        for (var i = 0; i < cases.Length; i++)
        {
            var c = cases[i];
            var options = new GenerationOptions
            {
                DoSample = true,
                Temperature = c.TryGetProperty("temperature", out var t) ? t.GetDouble() : 1.0,
                TopK = c.TryGetProperty("top_k", out var k) ? k.GetInt32() : null,
                TopP = c.TryGetProperty("top_p", out var p) ? p.GetDouble() : 1.0,
                MinTokensToKeep = c.TryGetProperty("keep", out var m) ? m.GetInt32() : 1,
            };
            using var scope = NewDisposeScope();
            var warped = LogitsProcessing.Warp(logits, options);
            var expected = G($"warp/{i}");
            Assert.True(isfinite(warped).eq(isfinite(expected)).all().item<bool>(), $"warp case {i}: a different set of tokens was kept");
            var finite = isfinite(expected);
            Assert.True(warped.masked_select(finite).allclose(expected.masked_select(finite), rtol: 0, atol: 1e-6), $"warp case {i}: kept scores differ");
            Assert.True(warped.softmax(-1).allclose(expected.softmax(-1), rtol: 0, atol: 1e-6), $"warp case {i}: distributions differ");
        }
    }
}
