using MedVlp.Architectures.Colipri;
using MedVlp.Architectures.MedBlip;
using MedVlp.Inference.Generation;
using MedVlp.Modeling.Blocks;
using MedVlp.Synthetic;
using MedVlp.Tests.Colipri;
using MedVlp.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Tests.Generation;

/// <summary>MedBLIP's visual question answering and COLIPRI's report generation through the shared engine.</summary>
[Collection(nameof(TorchRandomState))]
public sealed class ModelGenerationTests
{
    [Fact]
    public async Task MedBlipAnswersThroughTheEngineAsItsGreedyPathDid()
    {
        var volumes = SyntheticBrainDataset.Generate(2, 21).Select(c => c.Volume).ToArray();
        using var model = VisionLanguageModel.Create(MedBlipConfig.Tiny(TestModels.Tokenizer.VocabularySize), TestModels.Tokenizer, TestModels.Preprocessing(32), seed: 5);
        var assistant = new MedBlipAssistant(model);
        var vqa = new VisualQuestionAnswering(model);
        Assert.Equal("gpt2-bpe", vqa.Tokenizer.Kind);
        const string question = "What will this subject be diagnosed with?";
        var old = assistant.Ask(volumes, [question, question], ["Age: 70.", null], maxTokens: 6);
        for (var i = 0; i < volumes.Length; i++)
        {
            var answer = vqa.Answer(volumes[i], question, i == 0 ? "Age: 70." : null, new GenerationOptions { MaxNewTokens = 6 });
            Assert.Equal(old[i], answer.Text);
        }

        // Streaming joins to the same text; beams and seeded sampling run on the same head.
        var pieces = new List<string>();
        await foreach (var piece in vqa.AnswerStreamingAsync(volumes[0], question, "Age: 70.", new GenerationOptions { MaxNewTokens = 6 }))
        {
            pieces.Add(piece);
        }

        Assert.Equal(old[0], string.Concat(pieces).Trim());
        var sampling = new GenerationOptions { MaxNewTokens = 8, DoSample = true, Seed = 3, TopP = 0.9, Temperature = 1.2 };
        Assert.Equal(vqa.Answer(volumes[1], "What is shown?", null, sampling).TokenIds, vqa.Answer(volumes[1], "What is shown?", null, sampling).TokenIds);
        var beams = vqa.Answer(volumes[1], "What is shown?", null, new GenerationOptions { MaxNewTokens = 5, NumBeams = 3 });
        Assert.NotNull(beams.Score);

        var live = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        vqa.Answer(volumes[0], question, null, new GenerationOptions { MaxNewTokens = 4, NumBeams = 2 });
        vqa.Answer(volumes[0], question, null, sampling);
        Assert.Equal(live, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        Assert.Throws<ArgumentException>(() => new VisualQuestionAnswering(TestModels.TinyModel()));
    }

    [Fact]
    public void TheCachedReportDecoderEqualsTheFullForwardAtEveryStep()
    {
        random.manual_seed(4);
        using var model = new ColipriModel(ColipriParityTests.TinyConfig());
        model.eval();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var image = model.EncodeImageTokens(randn([1L, 1, 16, 16, 16]));
        var ids = tensor(new long[] { 2, 7, 30, 11, 4, 19 }).unsqueeze(0);
        var full = model.ReportLogits(image, ids, ones_like(ids));
        using var cache = new KeyValueCache(model.Decoder.Layers);
        var first = model.Decoder.Decode(ids.narrow(1, 0, 2), image, cache); // two tokens at once (causal mask over the cache)
        Assert.True(first.allclose(full.narrow(1, 0, 2), 1e-5, 1e-5));
        for (var t = 2; t < 6; t++)
        {
            var step = model.Decoder.Decode(ids.narrow(1, t, 1), image, cache);
            Assert.True(step.allclose(full.narrow(1, t, 1), 1e-5, 1e-5), $"step {t}");
        }

        // Greedy with the cache = greedy recomputing the whole report each step (the old GenerateReport).
        var generated = model.GenerateReport(image, 2, 3, 10);
        var sequence = new List<long> { 2 };
        for (var step = 0; step < 10; step++)
        {
            var seq = tensor(sequence.ToArray()).unsqueeze(0);
            var next = model.ReportLogits(image, seq, ones_like(seq)).select(1, -1).argmax(-1).item<long>();
            if (next == 3)
            {
                break;
            }

            sequence.Add(next);
        }

        Assert.Equal(sequence.Skip(1), generated);
    }

    [Fact]
    public async Task ColipriWritesReportsThroughTheEngine()
    {
        var tokenizer = TestModels.Tokenizer;
        var config = ColipriParityTests.TinyConfig() with { Text = ColipriParityTests.TinyConfig().Text with { VocabSize = tokenizer.VocabularySize, MaxPositionEmbeddings = 32 }, MaxTextTokens = 32 };
        random.manual_seed(9);
        using var model = new ColipriModel(config);
        model.eval();
        var reports = new ReportGenerator(model, tokenizer, TestModels.Preprocessing(16));
        var volume = SyntheticBrainDataset.Generate(1, 4)[0].Volume;
        var greedy = reports.Generate(volume, new GenerationOptions { MaxNewTokens = 12 });
        Assert.NotEmpty(greedy.TokenIds);
        Assert.Equal(tokenizer.Decode(greedy.TokenIds).Trim(), greedy.Text);
        var pieces = new List<string>();
        await foreach (var piece in reports.GenerateStreamingAsync(volume, new GenerationOptions { MaxNewTokens = 12 }))
        {
            pieces.Add(piece);
        }

        Assert.Equal(greedy.Text, string.Concat(pieces).Trim());
        var beams = reports.Generate(volume, new GenerationOptions { MaxNewTokens = 8, NumBeams = 3, LengthPenalty = 0.8 });
        Assert.NotNull(beams.Score);
        Assert.True(beams.TokenIds.Count <= 8);

        // The reports' limit is the decoder's positions (the start token takes one).
        var capped = reports.Generate(volume, new GenerationOptions { MaxNewTokens = 500 });
        Assert.True(capped.TokenIds.Count <= 31);

        var live = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        reports.Generate(volume, new GenerationOptions { MaxNewTokens = 6, DoSample = true, Seed = 2, TopK = 20 });
        reports.Generate(volume, new GenerationOptions { MaxNewTokens = 6, NumBeams = 2 });
        Assert.Equal(live, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }
}
