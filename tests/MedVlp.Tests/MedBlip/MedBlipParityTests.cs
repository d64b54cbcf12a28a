using System.Text.Json;
using MedVlp.Architectures.MedBlip;
using MedVlp.Modeling;
using MedVlp.Modeling.Backbones;
using MedVlp.Serialization;
using MedVlp.Testing;
using MedVlp.Tests.Blocks;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Tests.MedBlip;

/// <summary>MedBLIP against the PyTorch reference of tests/golden/make_medblip_golden.py (same weights, tiny sizes).</summary>
[Collection(nameof(TorchRandomState))] // trains in training mode: kept apart from the tests that check seeded weights
public sealed class MedBlipParityTests
{
    /// <summary>The sizes of the golden script (its S dictionary).</summary>
    internal static MedBlipConfig GoldenConfig() => new()
    {
        InputSize = 16,
        PatchSize = 8,
        VisionWidth = 16,
        VisionDepth = 2,
        VisionHeads = 2,
        VisionMlpRatio = 2,
        QFormer = new QFormerConfig
        {
            VocabSize = 30,
            HiddenSize = 16,
            NumHiddenLayers = 3,
            NumAttentionHeads = 2,
            IntermediateSize = 24,
            MaxPositionEmbeddings = 20,
            EncoderWidth = 16,
            QueryTokens = 4,
            HiddenDropoutProb = 0,
            AttentionProbsDropoutProb = 0,
        },
        LanguageModel = new Gpt2Config { VocabSize = 40, NPositions = 64, NEmbd = 16, NLayer = 2, NHead = 2, EmbdPdrop = 0, ResidPdrop = 0, AttnPdrop = 0 },
        EmbedDim = 8,
        MaxTextTokens = 16,
    };

    private static readonly Lazy<Dictionary<string, Tensor>> Golden = new(() => GoldenTensors.Load("medblip_golden.safetensors"));

    private static Tensor G(string key) => Golden.Value.TryGetValue(key, out var t) ? t : throw new KeyNotFoundException($"golden key {key}");

    internal static MedBlipModel GoldenModel(MedBlipConfig? config = null)
    {
        var model = (MedBlipModel)ModelRegistry.Create(config ?? GoldenConfig());
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

        return model;
    }

    internal static MedBlipBatch GoldenBatch() => new(
        G("input/volumes"), G("input/report"), G("input/report_mask"), G("input/qa"), G("input/qa_mask"),
        G("input/prompt"), G("input/prompt_mask"), G("input/answer"), G("input/answer_mask"));

    [Fact]
    public void ImageTokensQueriesLossesAndGradientsEqualTheReference()
    {
        using var model = GoldenModel();
        model.train();
        Assert.False(model.LanguageModel.training);
        using var scope = NewDisposeScope();
        var batch = GoldenBatch();
        BlocksGolden.AssertClose(G("output/image_tokens"), model.EncodeImageTokens(batch.Volumes), "image tokens");
        BlocksGolden.AssertClose(G("output/queries"), model.EncodeQueries(batch.Volumes), "query outputs");
        using var loss = model.ComputeLoss(batch);
        BlocksGolden.AssertClose(G("output/itc_report").reshape([]), loss.Terms["itc_report"], "ITC(report)");
        BlocksGolden.AssertClose(G("output/itc_qa").reshape([]), loss.Terms["itc_qa"], "ITC(question + answer)");
        BlocksGolden.AssertClose(G("output/lm").reshape([]), loss.Terms["lm"], "LM loss");
        loss.Total.backward();

        var trainable = JsonDocument.Parse(File.ReadAllText(TestData.Golden("medblip_golden.json"))).RootElement.GetProperty("trainable")
            .EnumerateArray().Select(e => e.GetString()!).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(trainable, model.TrainableParameters().Select(p => p.Name).Order(StringComparer.Ordinal).ToArray());
        foreach (var (name, p) in model.named_parameters())
        {
            if (trainable.Contains(name))
            {
                Assert.True(p.grad is not null, $"no gradient reached {name}");
                BlocksGolden.AssertClose(G("grad/" + name), p.grad!, "grad " + name);
            }
            else
            {
                Assert.False(p.requires_grad, $"{name} should be frozen");
                Assert.True(p.grad is null || p.grad.abs().max().item<float>() == 0, $"frozen {name} got a gradient");
            }
        }
    }

    [Fact]
    public void AnswerOnlyLossEqualsTheReference()
    {
        using var model = GoldenModel(GoldenConfig() with { ScorePrompt = false });
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var batch = GoldenBatch();
        var loss = model.LanguageModelLoss(model.EncodeQueries(batch.Volumes), batch);
        BlocksGolden.AssertClose(G("output/lm_answer_only").reshape([]), loss, "answer-only LM loss");
        Assert.True(Math.Abs(loss.item<float>() - G("output/lm").item<float>()) > 1e-3, "answer-only must differ from the prompt-scored loss");
    }

    [Fact]
    public void GreedyTokensWithTheCacheEqualTheReferenceWithout()
    {
        using var model = GoldenModel();
        using var scope = NewDisposeScope();
        var batch = GoldenBatch();
        var promptMask = batch.PromptMask.data<long>().ToArray();
        var promptIds = batch.PromptIds.data<long>().ToArray();
        var width = (int)batch.PromptIds.shape[1];
        var prompts = Enumerable.Range(0, 3).Select(r => (IReadOnlyList<int>)Enumerable.Range(0, width).Where(t => promptMask[(r * width) + t] == 1).Select(t => (int)promptIds[(r * width) + t]).ToArray()).ToArray();
        var expected = JsonDocument.Parse(File.ReadAllText(TestData.Golden("medblip_golden.json"))).RootElement.GetProperty("greedy")
            .EnumerateArray().Select(row => row.EnumerateArray().Select(e => e.GetInt64()).ToArray()).ToArray();
        var before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        var generated = model.GenerateGreedy(batch.Volumes, prompts, 5, endOfText: 39);
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        Assert.Equal(expected.Length, generated.Count);
        for (var r = 0; r < expected.Length; r++)
        {
            Assert.Equal(expected[r], generated[r]);
        }
    }

    [Fact]
    public void ATrainingStepLeavesNoTensorAlive()
    {
        using var model = GoldenModel();
        model.train();
        using var optimizer = optim.AdamW(model.TrainableParameters().Select(p => p.Parameter), lr: 1e-3);
        var batch = GoldenBatch();
        double first = 0, last = 0;
        for (var step = 0; step < 3; step++)
        {
            var before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            using (var scope = NewDisposeScope())
            {
                optimizer.zero_grad();
                using var loss = model.ComputeLoss(batch);
                loss.Total.backward();
                optimizer.step();
                last = loss.Total.item<float>();
                first = step == 0 ? last : first;
            }

            if (step > 0)
            {
                // Step 0 creates the gradients and AdamW's state; later steps reuse them.
                Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
            }
        }

        Assert.True(last < first, $"the loss should fall on a fixed batch: {first} -> {last}");
    }
}
