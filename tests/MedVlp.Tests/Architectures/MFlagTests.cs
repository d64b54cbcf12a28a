using System.Text.Json;
using MedVlp.Architectures.MFlag;
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
/// M-FLAG against a PyTorch reference written after the released ResNet_CXRBert and trainer (tests/golden/make_mflag_golden.py):
/// forward outputs, loss, gradients and BatchNorm running statistics in float64 to 1e-5 (float32 forward to 1e-4); the
/// frozen language model; the full-size layout and parameter ratio; no tensor left by a training step.
/// </summary>
[Collection(nameof(TorchRandomState))] // creates randomly initialised modules: libtorch's global generator is shared
public sealed class MFlagTests(ITestOutputHelper output)
{
    private static readonly Device Meta = new(DeviceType.META);

    private static readonly Lazy<Dictionary<string, Tensor>> Golden = new(() => GoldenTensors.Load("mflag_golden.safetensors"));

    [Fact]
    public void ForwardAndLossMatchTheReleasedCodeInFloat32()
    {
        // The reference runs in float64; in float32 the affine-free BatchNorm1d over a batch of 4 amplifies the rounding
        // of the CLS state (about 1.1e-5 on proj_text_emb, just over 1e-5), so float32 is held to 1e-4 here and the float64 test
        // below holds every output, the loss, the gradients and the running statistics to 1e-5.
        using var scope = NewDisposeScope();
        using var model = Loaded(ScalarType.Float32);
        using var result = model.Forward(Get("input/images"), Get("input/ids").to(ScalarType.Int64), Get("input/mask").to(ScalarType.Int64));
        using var loss = MFlagModel.Loss(result, new OrthogonalityLoss(), new AlignmentLoss());
        var worst = Close(Get("img_emb"), result.ImageFeature, "img_emb", 1e-4);
        worst = Math.Max(worst, Close(Get("proj_img_emb"), result.ImageEmbedding, "proj_img_emb", 1e-4));
        worst = Math.Max(worst, Close(Get("proj_text_emb"), result.TextEmbedding, "proj_text_emb", 1e-4));
        worst = Math.Max(worst, Close(Get("loss_orthogonal"), loss.Terms["orthogonality"].reshape(1), "orthogonality", 1e-4));
        worst = Math.Max(worst, Close(Get("loss_align"), loss.Terms["alignment"].reshape(1), "alignment", 1e-4));
        worst = Math.Max(worst, Close(Get("loss"), loss.Total.reshape(1), "loss", 1e-4));
        output.WriteLine($"M-FLAG tiny float32 forward: largest difference {worst:E2}, loss {loss.Total.item<float>()}");
    }

    [Fact]
    public void GradientsAndRunningStatisticsMatchTheReleasedCodeInFloat64()
    {
        using var scope = NewDisposeScope();
        using var model = Loaded(ScalarType.Float64);
        var result = model.Forward(Get("input/images").to(ScalarType.Float64), Get("input/ids").to(ScalarType.Int64), Get("input/mask").to(ScalarType.Int64));
        var loss = MFlagModel.Loss(result, new OrthogonalityLoss(), new AlignmentLoss());
        var worst = BlocksGolden.AssertClose(Get("img_emb"), result.ImageFeature, "img_emb");
        worst = Math.Max(worst, BlocksGolden.AssertClose(Get("proj_img_emb"), result.ImageEmbedding, "proj_img_emb"));
        worst = Math.Max(worst, BlocksGolden.AssertClose(Get("proj_text_emb"), result.TextEmbedding, "proj_text_emb"));
        worst = Math.Max(worst, BlocksGolden.AssertClose(Get("loss_orthogonal"), loss.Terms["orthogonality"].reshape(1), "orthogonality"));
        worst = Math.Max(worst, BlocksGolden.AssertClose(Get("loss_align"), loss.Terms["alignment"].reshape(1), "alignment"));
        worst = Math.Max(worst, BlocksGolden.AssertClose(Get("loss"), loss.Total.reshape(1), "loss"));
        loss.Total.backward();
        var trainable = model.TrainableParameters().ToDictionary(p => p.Name, p => p.Parameter);
        var expected = Golden.Value.Keys.Where(k => k.StartsWith("grad/", StringComparison.Ordinal)).Select(k => k[5..]).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(expected, trainable.Keys.Order(StringComparer.Ordinal).ToArray());
        foreach (var (name, p) in trainable)
        {
            Assert.True(p.grad is not null, $"no gradient reached {name}");
            worst = Math.Max(worst, BlocksGolden.AssertClose(Get($"grad/{name}"), p.grad!, $"grad {name}"));
        }

        var buffers = model.named_buffers().Where(b => !b.name.EndsWith("num_batches_tracked", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(buffers);
        foreach (var (name, b) in buffers)
        {
            worst = Math.Max(worst, BlocksGolden.AssertClose(Get($"after/{name}"), b, $"running statistic {name}"));
        }

        Assert.All(model.TextEncoder.parameters(), p => Assert.Null(p.grad));
        output.WriteLine($"M-FLAG tiny float64: {trainable.Count} trainable tensors, {buffers.Count} buffers, largest difference {worst:E2}");
    }

    [Fact]
    public void FrozenLanguageModelRunsWithoutGraphAndIsCached()
    {
        using var scope = NewDisposeScope();
        using var model = Loaded(ScalarType.Float32);
        var ids = Get("input/ids").to(ScalarType.Int64);
        var mask = Get("input/mask").to(ScalarType.Int64);
        Assert.True(model.IsFrozen(MFlagModel.TextComponent));
        var plain = model.EncodeTextCls(ids, mask);
        Assert.False(plain.requires_grad);
        model.CacheFrozenTextOutputs = true;
        var first = model.EncodeTextCls(ids, mask);
        Assert.Equal(4, model.CachedTextOutputs);
        var again = model.EncodeTextCls(ids[TensorIndex.Slice(1, 3)], mask[TensorIndex.Slice(1, 3)]);
        Assert.Equal(4, model.CachedTextOutputs);
        BlocksGolden.AssertClose(plain, first, "cached CLS");
        BlocksGolden.AssertClose(plain[TensorIndex.Slice(1, 3)], again, "cached rows");
        model.Unfreeze(MFlagModel.TextComponent);
        Assert.True(model.EncodeTextCls(ids, mask).requires_grad);
        Assert.Throws<ArgumentException>(() => model.EncodeTextCls(ids, mask[TensorIndex.Slice(0, 2)]));
    }

    [Fact]
    public void FullSizeHasTheReleasedLayoutAndTrainsAFractionOfTheParameters()
    {
        using var model = (MFlagModel)ModelRegistry.Create("mflag", ModelRegistry.Full, new ModelCreateOptions { Device = Meta, Freeze = MFlagModel.DefaultFreeze });
        using var doc = JsonDocument.Parse(File.ReadAllText(TestData.Golden("resnet50_keys.json")));
        var torchvision = doc.RootElement.GetProperty("keys").EnumerateObject().Where(p => !p.Name.StartsWith("fc.", StringComparison.Ordinal))
            .ToDictionary(p => "encoder." + p.Name, p => p.Value.EnumerateArray().Select(v => v.GetInt64()).ToArray());
        var state = model.state_dict();
        var encoder = state.Where(kv => kv.Key.StartsWith("encoder.", StringComparison.Ordinal)).ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        Assert.Equal(torchvision.Keys.Order(StringComparer.Ordinal), encoder.Keys.Order(StringComparer.Ordinal));
        Assert.All(torchvision, kv => Assert.Equal(kv.Value, encoder[kv.Key]));
        Assert.Equal([2048L, 2048], state["proj_v.0.weight"].shape);
        Assert.Equal([1024L, 2048], state["proj_v.3.weight"].shape);
        Assert.Equal([2048L, 768], state["proj_t.0.weight"].shape);
        Assert.DoesNotContain("proj_v.4.weight", state.Keys);
        Assert.Contains("proj_v.4.running_mean", state.Keys);

        var counts = model.CountParameters();
        long resnet = 25557032 - ((2048 * 1000) + 1000);
        long projV = (2048 * 2048) + 2048 + (2 * 2048) + (2048 * 1024) + 1024;
        long projT = (768 * 2048) + 2048 + (2 * 2048) + (2048 * 1024) + 1024;
        Assert.Equal(resnet + projV + projT, counts.Trainable);
        Assert.Equal(model.TextEncoder.parameters().Sum(p => p.numel()), counts.Frozen);
        output.WriteLine($"M-FLAG full: {counts.Total:N0} parameters, {counts.Trainable:N0} trainable ({100.0 * counts.Trainable / counts.Total:F1}%), {counts.Frozen:N0} frozen");
    }

    [Fact]
    public void ATrainingStepLeavesNoTensorAlive()
    {
        using var model = (MFlagModel)ModelRegistry.Create("mflag", ModelRegistry.Tiny, new ModelCreateOptions { Freeze = MFlagModel.DefaultFreeze, Seed = 3 });
        model.CacheFrozenTextOutputs = true;
        using var optimizer = optim.AdamW(model.TrainableParameters().Select(p => p.Parameter), 1e-3, weight_decay: 0.05);
        using var orthogonality = new OrthogonalityLoss();
        using var alignment = new AlignmentLoss();
        using var images = randn(4, 1, 32, 32);
        using var ids = tensor(new long[] { 101, 7, 8, 102, 101, 9, 102, 0, 101, 5, 6, 102, 101, 11, 102, 0 }, [4, 4]);
        using var mask = ids.ne(0).to(ScalarType.Int64);
        model.train();
        void Step()
        {
            using var scope = NewDisposeScope();
            optimizer.zero_grad();
            using var result = model.Forward(images, ids, mask);
            using var loss = MFlagModel.Loss(result, orthogonality, alignment);
            loss.Total.backward();
            optimizer.step();
        }

        Step();
        var before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (var i = 0; i < 3; i++)
        {
            Step();
        }

        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    private static double Close(Tensor expected, Tensor actual, string what, double tolerance)
    {
        Assert.True(expected.shape.SequenceEqual(actual.shape), $"{what}: shape [{string.Join(", ", actual.shape)}], expected [{string.Join(", ", expected.shape)}]");
        var e = expected.to(ScalarType.Float64).contiguous().data<double>().ToArray();
        var a = actual.detach().to(ScalarType.Float64).contiguous().data<double>().ToArray();
        var worst = 0.0;
        for (var i = 0; i < e.Length; i++)
        {
            var diff = Math.Abs(e[i] - a[i]);
            worst = Math.Max(worst, diff);
            Assert.True(diff <= tolerance * (1 + Math.Abs(e[i])), $"{what}[{i}]: expected {e[i]}, got {a[i]} (diff {diff:E2})");
        }

        return worst;
    }

    private static Tensor Get(string key) => Golden.Value.TryGetValue(key, out var t) ? t : throw new KeyNotFoundException($"golden key {key}");

    /// <summary>The tiny model with the golden weights and running statistics, in training mode (lm_model frozen, in eval).</summary>
    private static MFlagModel Loaded(ScalarType dtype)
    {
        var model = (MFlagModel)ModelRegistry.Create(MFlagConfig.Tiny(vocabularySize: 50), new ModelCreateOptions { Freeze = MFlagModel.DefaultFreeze });
        model.to(dtype);
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
}
