using MedVlp.Inference.Generation;
using MedVlp.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Tests.Generation;

/// <summary>The engine's sampling, stop sequences, streaming, cancellation and native memory.</summary>
[Collection(nameof(TorchRandomState))] // builds randomly initialised GPT-2s: libtorch's global generator is shared
public sealed class GenerationBehaviourTests
{
    private static readonly Gpt2TextTokenizer Gpt2 = new();

    [Fact]
    public void TheSameSeedGivesTheSameTextAndSeedsDiffer()
    {
        using var model = GenerationGoldenTests.GoldenModel();
        using var scope = NewDisposeScope();
        IReadOnlyList<int> Sample(long seed)
        {
            using var head = new Gpt2LanguageHead(model, tensor(new long[] { 3, 17, 8, 25 }), null, null);
            return new TextGenerator().Generate(head, new GenerationOptions { DoSample = true, Seed = seed, MaxNewTokens = 20, Temperature = 1.5 }).TokenIds;
        }

        var first = Sample(7);
        Assert.Equal(first, Sample(7));
        var others = Enumerable.Range(8, 4).Select(s => Sample(s)).ToArray();
        Assert.Contains(others, o => !o.SequenceEqual(first));
    }

    [Fact]
    public void SampledTokensFollowTheWarpedDistribution()
    {
        // Fixed logits every step: 4000 draws of one seeded generation against softmax(top-k(logits / T)).
        var logits = new float[] { 2.0f, 1.5f, 0.2f, 1.0f, -1f, 0.5f, 3.0f, -2f, 0f, 1.2f };
        var options = new GenerationOptions { DoSample = true, Seed = 11, MaxNewTokens = 4000, Temperature = 0.8, TopK = 6 };
        using var head = new ScriptedHead(logits.Length, [0]) { FixedLogits = logits };
        var tokens = new TextGenerator().Generate(head, options).TokenIds;
        Assert.Equal(4000, tokens.Count);
        using var scope = NewDisposeScope();
        var expected = LogitsProcessing.Warp(tensor(logits).unsqueeze(0), options).softmax(-1).squeeze(0).data<float>().ToArray();
        var counts = new int[logits.Length];
        foreach (var t in tokens)
        {
            counts[t]++;
        }

        var chiSquare = 0.0;
        for (var i = 0; i < logits.Length; i++)
        {
            if (expected[i] == 0)
            {
                Assert.Equal(0, counts[i]); // filtered by top-k: never drawn
                continue;
            }

            var e = expected[i] * tokens.Count;
            chiSquare += (counts[i] - e) * (counts[i] - e) / e;
        }

        // 5 degrees of freedom (6 kept tokens): the 99.9% quantile is 20.5.
        Assert.True(chiSquare < 20.5, $"chi-square {chiSquare:F2} for counts [{string.Join(", ", counts)}], expected p [{string.Join(", ", expected)}]");
        Assert.Equal(4, counts.Count(c => c == 0));
    }

    [Fact]
    public async Task StreamingNeverSplitsAUtf8CharacterAndStopsBeforeTheStopSequence()
    {
        const string text = "Grüße 😀 from the scanner. Findings: none ### ignored after";
        var ids = Gpt2.Inner.EncodeToIds(text).ToArray();
        Assert.Contains(ids, id => Gpt2.Decode([id]).Contains('\uFFFD', StringComparison.Ordinal)); // the emoji is split over byte tokens
        using var head = new ScriptedHead(Gpt2.VocabularySize, ids, Gpt2TextTokenizer.EndOfTextTokenId);
        var generator = new TextGenerator(Gpt2);
        var options = new GenerationOptions { MaxNewTokens = 64, StopSequences = ["###", "never appears"] };
        var pieces = new List<string>();
        await foreach (var piece in generator.GenerateStreamingAsync(head, options))
        {
            pieces.Add(piece);
        }

        Assert.True(pieces.Count > 3);
        Assert.DoesNotContain(pieces, p => p.Contains('\uFFFD', StringComparison.Ordinal) || p.Contains('#', StringComparison.Ordinal));
        Assert.Equal("Grüße 😀 from the scanner. Findings: none ", string.Concat(pieces));
        Assert.True(head.Received.Count > 5);
        Assert.Equal(ids.Take(head.Received.Count), head.Received.Select(i => (int)i)); // fed back what it chose

        using var again = new ScriptedHead(Gpt2.VocabularySize, ids, Gpt2TextTokenizer.EndOfTextTokenId);
        var result = generator.Generate(again, options);
        Assert.Equal(string.Concat(pieces), result.Text);
        Assert.Equal(GenerationFinishReason.StopSequence, result.FinishReason);
    }

    [Fact]
    public void EndOfSequenceAndTheTokenLimitEndGeneration()
    {
        var ids = Gpt2.Inner.EncodeToIds("No acute findings.").ToArray();
        var generator = new TextGenerator(Gpt2);
        using (var head = new ScriptedHead(Gpt2.VocabularySize, [.. ids, Gpt2TextTokenizer.EndOfTextTokenId, 11], Gpt2TextTokenizer.EndOfTextTokenId))
        {
            var result = generator.Generate(head, new GenerationOptions { MaxNewTokens = 50 });
            Assert.Equal("No acute findings.", result.Text);
            Assert.Equal(ids, result.TokenIds);
            Assert.Equal(GenerationFinishReason.EndOfSequence, result.FinishReason);
        }

        using (var head = new ScriptedHead(Gpt2.VocabularySize, ids, Gpt2TextTokenizer.EndOfTextTokenId))
        {
            var result = generator.Generate(head, new GenerationOptions { MaxNewTokens = 2 });
            Assert.Equal(ids.Take(2), result.TokenIds);
            Assert.Equal(GenerationFinishReason.Length, result.FinishReason);
        }
    }

    [Fact]
    public async Task CancellationStopsBetweenTokens()
    {
        using var cts = new CancellationTokenSource();
        using var head = new ScriptedHead(Gpt2.VocabularySize, Gpt2.Inner.EncodeToIds("one two three four five six seven eight nine ten").ToArray());
        var seen = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var piece in new TextGenerator(Gpt2).GenerateStreamingAsync(head, new GenerationOptions { MaxNewTokens = 100 }, cts.Token))
            {
                seen++;
                await cts.CancelAsync();
            }
        });
        Assert.Equal(1, seen);
        using var again = new ScriptedHead(Gpt2.VocabularySize, [1]);
        Assert.Throws<OperationCanceledException>(() => new TextGenerator().Generate(again, null, cts.Token));
    }

    [Fact]
    public void BadOptionsAreRejectedByName()
    {
        using var head = new ScriptedHead(10, [1]);
        var generator = new TextGenerator();
        Assert.Contains("TopP", Assert.Throws<ArgumentException>(() => generator.Generate(head, new GenerationOptions { DoSample = true, TopP = 0 })).Message, StringComparison.Ordinal);
        Assert.Contains("NumBeams", Assert.Throws<ArgumentException>(() => generator.Generate(head, new GenerationOptions { DoSample = true, NumBeams = 2 })).Message, StringComparison.Ordinal);
        Assert.Contains("Temperature", Assert.Throws<ArgumentException>(() => generator.Generate(head, new GenerationOptions { Temperature = 0 })).Message, StringComparison.Ordinal);
        Assert.Contains("tokenizer", Assert.Throws<ArgumentException>(() => generator.Generate(head, new GenerationOptions { StopSequences = ["x"] })).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void NoTensorSurvivesAGeneration()
    {
        using var model = GenerationGoldenTests.GoldenModel();
        var generator = new TextGenerator();
        var prompt = new long[] { 3, 17, 8, 25 };
        GeneratedText Run(GenerationOptions options)
        {
            using var ids = tensor(prompt);
            using var head = new Gpt2LanguageHead(model, ids, null, 43);
            return generator.Generate(head, options);
        }

        Run(new GenerationOptions { MaxNewTokens = 2 }); // warm-up
        foreach (var options in new[]
        {
            new GenerationOptions { MaxNewTokens = 10 },
            new GenerationOptions { MaxNewTokens = 10, DoSample = true, Seed = 1, TopK = 5, TopP = 0.9, Temperature = 0.7, RepetitionPenalty = 1.2 },
            new GenerationOptions { MaxNewTokens = 8, NumBeams = 3, RepetitionPenalty = 1.1 },
        })
        {
            var before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            var result = Run(options);
            Assert.NotEmpty(result.TokenIds);
            Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        }
    }
}
