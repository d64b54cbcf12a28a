using System.Text.Json;
using MedVlp.Architectures.Prior;
using MedVlp.Losses;
using MedVlp.Modeling;
using MedVlp.Serialization;
using MedVlp.Testing;
using MedVlp.Tests.Blocks;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace MedVlp.Tests.Architectures;

/// <summary>
/// PRIOR against a PyTorch reference written after the released code (tests/golden/make_prior_golden.py): the three
/// stages' losses and intermediates (local tokens by a plain reshape, both decoders, the Hungarian-matched report
/// reconstruction), stage-3 gradients of key parameters, BatchNorm running statistics and the zero-shot scores, in
/// float64 to 1e-5; the full-size layout on <c>meta</c>; the 3D variant; no tensor left by a training step.
/// </summary>
[Collection(nameof(TorchRandomState))] // creates randomly initialised modules: libtorch's global generator is shared
public sealed class PriorTests(ITestOutputHelper output)
{
    private static readonly Device Meta = new(DeviceType.META);

    private static readonly Lazy<Dictionary<string, Tensor>> Golden = new(() => GoldenTensors.Load("prior_golden.safetensors"));

    [Fact]
    public void ThreeStagesZeroShotAndGradientsMatchTheReleasedCode()
    {
        using var scope = NewDisposeScope();
        using var model = Loaded();
        var images = Get("input/images").to(ScalarType.Float64);
        var ids = Get("input/ids").to(ScalarType.Int64);
        var mask = Get("input/mask").to(ScalarType.Int64);
        var index = Get("input/sentence_index").to(ScalarType.Int64);

        // The sentence index of the released data pipeline, rebuilt from the token ids ("." = 5 ends a sentence).
        Assert.Equal(index.data<long>().ToArray(), PriorModel.SentenceIndex(ids, mask, new HashSet<long> { 5 }, new HashSet<long> { 0, 2, 3 }).data<long>().ToArray());

        var worst = 0.0;
        LossOutput? stage3 = null;
        foreach (var (n, weights) in new[] { (1, PriorLossWeights.Stage1), (2, PriorLossWeights.Stage2), (3, PriorLossWeights.Stage3) })
        {
            var encoding = model.Encode(images, ids, mask, index);
            var loss = model.ComputeLosses(encoding, weights);
            worst = Math.Max(worst, BlocksGolden.AssertClose(Get($"s{n}/local_image"), encoding.LocalImage, $"stage {n} local image tokens"));
            worst = Math.Max(worst, BlocksGolden.AssertClose(Get($"s{n}/global_image"), encoding.GlobalImage, $"stage {n} global image"));
            var expected = new Dictionary<string, string>
            {
                ["global"] = "global", ["local_image"] = "local_image_loss", ["local_text"] = "local_text", ["proto"] = "proto",
                ["rec_image"] = "rec_image", ["spg"] = "spg", ["kl"] = "kl", ["gpa"] = "gpa",
            };
            foreach (var (term, key) in expected)
            {
                var present = Golden.Value.ContainsKey($"s{n}/{key}");
                Assert.Equal(present, loss.Terms.ContainsKey(term));
                if (present)
                {
                    worst = Math.Max(worst, BlocksGolden.AssertClose(Get($"s{n}/{key}"), loss.Terms[term].reshape(1), $"stage {n} {term}"));
                }
            }

            worst = Math.Max(worst, BlocksGolden.AssertClose(Get($"s{n}/total"), loss.Total.reshape(1), $"stage {n} total"));
            output.WriteLine($"stage {n}: total {loss.Total.item<double>():F6} ({string.Join(", ", loss.Terms.Select(t => $"{t.Key} {t.Value.item<double>():F5}"))})");
            stage3 = loss;
        }

        stage3!.Total.backward();
        var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var gradients = Golden.Value.Keys.Where(k => k.StartsWith("grad/", StringComparison.Ordinal)).ToList();
        Assert.True(gradients.Count >= 15);
        foreach (var key in gradients)
        {
            var p = parameters[key[5..]];
            Assert.True(p.grad is not null, $"no gradient reached {key[5..]}");
            worst = Math.Max(worst, BlocksGolden.AssertClose(Get(key), p.grad!.reshape(Get(key).shape), key));
        }

        foreach (var (name, b) in model.named_buffers().Where(b => !b.name.EndsWith("num_batches_tracked", StringComparison.Ordinal)))
        {
            worst = Math.Max(worst, BlocksGolden.AssertClose(Get($"after/{name}"), b, $"running statistic {name}"));
        }

        model.eval();
        using (no_grad())
        {
            var scores = model.ZeroShotScores(images, Get("input/prompt_ids").to(ScalarType.Int64), Get("input/prompt_mask").to(ScalarType.Int64));
            worst = Math.Max(worst, BlocksGolden.AssertClose(Get("zs/scores"), scores, "zero-shot scores"));
        }

        output.WriteLine($"PRIOR tiny float64: 3 stages, {gradients.Count} gradients, zero-shot; largest difference {worst:E2}");
    }

    [Fact]
    public void ImageAndReportReconstructionMatchTheReleasedDecoders()
    {
        using var scope = NewDisposeScope();
        using var model = Loaded();
        var images = Get("input/images").to(ScalarType.Float64);
        var encoding = model.Encode(images, Get("input/ids").to(ScalarType.Int64), Get("input/mask").to(ScalarType.Int64), Get("input/sentence_index").to(ScalarType.Int64));
        var (reconstruction, generated) = model.Reconstruct(encoding);
        var worst = BlocksGolden.AssertClose(Get("s3/reconstruction"), reconstruction, "reconstructed image");
        worst = Math.Max(worst, BlocksGolden.AssertClose(Get("s3/generated"), generated, "generated sentence prototypes"));
        output.WriteLine($"decoders: largest difference {worst:E2}");
    }

    [Fact]
    public void LocalTokensAreAPlainReshapeOfTheNchwMap()
    {
        using var scope = NewDisposeScope();
        using var model = Loaded();
        var images = Get("input/images").to(ScalarType.Float64);
        using var noGrad = no_grad();
        var map = model.ImageBackbone.Features(images).Map; // (4, 128, 2, 2)
        var (local, _) = model.EncodeImage(images);
        var projection = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var plain = nn.functional.linear(map.reshape(4, -1, 128), projection["local_image_projection.weight"], projection["local_image_projection.bias"]);
        var permuted = nn.functional.linear(map.flatten(2).transpose(1, 2), projection["local_image_projection.weight"], projection["local_image_projection.bias"]);
        BlocksGolden.AssertClose(plain, local, "plain reshape");
        Assert.True((permuted - local).abs().max().item<double>() > 1e-3, "the local tokens must not be the permuted (channels-last) map");
    }

    [Fact]
    public void FullSizeHasTheReleasedLayout()
    {
        using var model = (PriorModel)ModelRegistry.Create("prior", ModelRegistry.Full, new ModelCreateOptions { Device = Meta });
        var state = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        using var resnet = JsonDocument.Parse(File.ReadAllText(TestData.Golden("resnet50_keys.json")));
        var torchvision = resnet.RootElement.GetProperty("keys").EnumerateObject().Where(p => !p.Name.StartsWith("fc.", StringComparison.Ordinal))
            .ToDictionary(p => "image_encoder.encoder." + p.Name, p => p.Value.EnumerateArray().Select(v => v.GetInt64()).ToArray());
        torchvision["image_encoder.encoder.conv1.weight"] = [64, 1, 7, 7]; // released: resnet50_224(in_channels=1)
        var image = state.Where(kv => kv.Key.StartsWith("image_encoder.encoder.", StringComparison.Ordinal)).ToDictionary(kv => kv.Key, kv => kv.Value);
        Assert.Equal(torchvision.Keys.Order(StringComparer.Ordinal), image.Keys.Order(StringComparer.Ordinal));
        Assert.All(torchvision, kv => Assert.Equal(kv.Value, image[kv.Key]));

        using var bert = JsonDocument.Parse(File.ReadAllText(TestData.Golden("bert_base_uncased_keys.json")));
        var bertKeys = bert.RootElement.GetProperty("keys").EnumerateArray()
            .ToDictionary(k => "text_encoder.encoder." + k.GetProperty("name").GetString(), k => k.GetProperty("shape").EnumerateArray().Select(v => v.GetInt64()).ToArray());
        bertKeys["text_encoder.encoder.embeddings.word_embeddings.weight"] = [28996, 768]; // Bio_ClinicalBERT's vocabulary
        var text = state.Where(kv => kv.Key.StartsWith("text_encoder.", StringComparison.Ordinal) && !kv.Key.EndsWith("position_ids", StringComparison.Ordinal))
            .ToDictionary(kv => kv.Key, kv => kv.Value);
        Assert.Equal(bertKeys.Keys.Order(StringComparer.Ordinal), text.Keys.Order(StringComparer.Ordinal));
        Assert.All(bertKeys, kv => Assert.Equal(kv.Value, text[kv.Key]));

        Assert.Equal([50L, 2048], state["image_encoder.atten_pool.positional_embedding"]);
        Assert.Equal([2048L, 2048], state["image_encoder.atten_pool.c_proj.weight"]);
        Assert.Equal([768L, 2048], state["local_image_projection.weight"]);
        Assert.Equal([768L, 768], state["local_text_projection.weight"]);
        Assert.Equal([768L, 768], state["global_text_projection.weight"]);
        Assert.Equal([384L, 768], state["predictor.0.weight"]);
        Assert.Equal([768L, 384], state["predictor.2.weight"]);
        Assert.Equal([1L, 16, 768], state["prototype_queries"]);
        Assert.Equal([512L, 768], state[PriorModelNames.Bank]);
        Assert.Equal("sentence_bank.embed.weight", PriorModel.ReleasedName(PriorModelNames.Bank));
        Assert.Equal([768L, 768], state["local_cross_attention.value2.weight"]);
        Assert.Equal([768L, 768], state["global_text_attention.q_proj.weight"]);
        Assert.Equal([768L, 1536, 3, 3], state["image_decoder.blocks.0.conv1.0.weight"]);
        Assert.Equal([768L], state["image_decoder.blocks.0.conv1.1.running_var"]);
        Assert.Equal([48L, 48, 3, 3], state["image_decoder.blocks.4.conv2.0.weight"]);
        Assert.Equal([1L, 48, 3, 3], state["image_decoder.output_head.0.weight"]);
        Assert.Equal([28996L, 768], state["sentence_decoder.embeddings.word_embeddings.weight"]);
        Assert.Equal([768L, 768], state["sentence_decoder.encoder.layer.7.crossattention.self.key.weight"]);
        Assert.DoesNotContain("sentence_decoder.encoder.layer.8.attention.self.query.weight", state.Keys);
        Assert.DoesNotContain("sentence_decoder.pooler.dense.weight", state.Keys);
        Assert.Equal([], state["logit_scale"]);
        var counts = model.CountParameters();
        output.WriteLine($"PRIOR full: {counts.Total:N0} parameters, {state.Count} state-dict entries");
    }

    [Fact]
    public void VolumeVariantRunsAllThreeStages()
    {
        random.manual_seed(5);
        using var model = new PriorModel(PriorConfig.Tiny(60, volumes: true));
        model.train();
        using var scope = NewDisposeScope();
        var volumes = randn([2, 1, 64, 64, 64]);
        var ids = tensor(new long[] { 2, 11, 5, 12, 13, 5, 3, 0, 2, 21, 22, 5, 3, 0, 0, 0 }, [2, 8]);
        var mask = ids.ne(0).to(ScalarType.Int64);
        var index = PriorModel.SentenceIndex(ids, mask, new HashSet<long> { 5 }, new HashSet<long> { 0, 2, 3 });
        var encoding = model.Encode(volumes, ids, mask, index);
        Assert.Equal([2L, 8, 32], encoding.LocalImage.shape); // a 2 x 2 x 2 map
        var (reconstruction, generated) = model.Reconstruct(encoding);
        Assert.Equal([2L, 1, 64, 64, 64], reconstruction.shape);
        Assert.Equal([2L, 8, 32], generated.shape);
        var loss = model.ComputeLosses(encoding, PriorLossWeights.Stage3);
        Assert.Equal(PriorLossWeights.Names.Order(StringComparer.Ordinal), loss.Terms.Keys.Order(StringComparer.Ordinal));
        Assert.True(double.IsFinite(loss.Total.item<float>()));
        loss.Total.backward();
        Assert.NotNull(model.ImageBackbone.parameters().First().grad);
    }

    [Fact]
    public void ATrainingStepOfEachStageLeavesNoTensorAlive()
    {
        random.manual_seed(9);
        using var model = new PriorModel(PriorConfig.Tiny(60));
        using var optimizer = optim.AdamW(model.TrainableParameters().Select(p => p.Parameter), 1e-4, weight_decay: 1e-6);
        using var images = randn(4, 1, 64, 64);
        using var ids = tensor(new long[] { 2, 11, 5, 12, 5, 3, 2, 21, 22, 5, 3, 0, 2, 31, 5, 32, 5, 3, 2, 41, 42, 43, 5, 3 }, [4, 6]);
        using var mask = ids.ne(0).to(ScalarType.Int64);
        using var index = PriorModel.SentenceIndex(ids, mask, new HashSet<long> { 5 }, new HashSet<long> { 0, 2, 3 });
        model.train();
        void Step(PriorLossWeights weights)
        {
            using var scope = NewDisposeScope();
            optimizer.zero_grad();
            using var encoding = model.Encode(images, ids, mask, index);
            using var loss = model.ComputeLosses(encoding, weights);
            loss.Total.backward();
            optimizer.step();
        }

        foreach (var weights in new[] { PriorLossWeights.Stage1, PriorLossWeights.Stage2, PriorLossWeights.Stage3 })
        {
            Step(weights);
            var before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            Step(weights);
            Step(weights);
            Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        }
    }

    [Fact]
    public void BadInputIsRejectedWithTheField()
    {
        using var model = new PriorModel(PriorConfig.Tiny(60));
        using var scope = NewDisposeScope();
        var ex = Assert.Throws<ArgumentException>(() => model.EncodeImage(zeros(1, 1, 32, 32)));
        Assert.Contains("[B, 1, 64, 64]", ex.Message, StringComparison.Ordinal);
        var ids = tensor(new long[] { 2, 3, 0 }, [1, 3]);
        var mask = ids.ne(0).to(ScalarType.Int64);
        var none = zeros_like(ids);
        Assert.Contains("at least one sentence", Assert.Throws<ArgumentException>(() => model.EncodeSentences(ids, mask, none)).Message, StringComparison.Ordinal);
        var gap = tensor(new long[] { 0, 2, 0 }, [1, 3]);
        Assert.Contains("consecutive", Assert.Throws<ArgumentException>(() => model.EncodeSentences(ids, mask, gap)).Message, StringComparison.Ordinal);
        var bad = PriorConfig.Tiny() with { ImageSize = 48 };
        Assert.Equal("image_size", Assert.Throws<ArgumentException>(bad.Validate).ParamName);
        var width = PriorConfig.Tiny() with { EmbeddingDim = 16 };
        Assert.Equal("decoder.hidden_size", Assert.Throws<ArgumentException>(width.Validate).ParamName);
    }

    private static Tensor Get(string key) => Golden.Value.TryGetValue(key, out var t) ? t : throw new KeyNotFoundException($"golden key {key}");

    /// <summary>The golden tiny model (3 queries, no reconstruction dropout, noise-free bank) in float64 training mode.</summary>
    private static PriorModel Loaded()
    {
        var config = PriorConfig.Tiny(vocabularySize: 50) with { Queries = 3, ImageReconstructionDropout = 0 };
        var model = (PriorModel)ModelRegistry.Create(config, new ModelCreateOptions());
        model.PrototypeBank.Options.Noise = PrototypeNoise.None;
        model.to(ScalarType.Float64);
        var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var golden = Golden.Value.Keys.Where(k => k.StartsWith("param/", StringComparison.Ordinal)).Select(k => k[6..]).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(golden, parameters.Keys.Order(StringComparer.Ordinal).ToArray());
        using (no_grad())
        {
            foreach (var (name, p) in parameters)
            {
                p.copy_(Get($"param/{name}"));
            }

            foreach (var (name, b) in model.named_buffers().Where(b => !b.name.EndsWith("num_batches_tracked", StringComparison.Ordinal)))
            {
                b.copy_(Get($"buffer/{name}"));
            }
        }

        model.train();
        return model;
    }

    private static class PriorModelNames
    {
        public const string Bank = "sentence_bank.prototypes";
    }
}
