using System.Text.Json;
using MedVlp.Modeling.Backbones;
using MedVlp.Serialization;
using MedVlp.Testing;
using MedVlp.Tests.Blocks;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace MedVlp.Tests.Backbones;

/// <summary>
/// MedVlp's ResNet against torchvision 0.14's own ResNet / Bottleneck code (tests/golden/make_resnet_golden.py): layer4
/// map, pooled feature, every parameter gradient, the input gradient and, in train mode, BatchNorm's running statistics,
/// to 1e-5; and the full ResNet-50 state-dict layout against torchvision's resnet50 on the meta device.
/// </summary>
[Collection(nameof(TorchRandomState))] // creates randomly initialised modules: libtorch's global generator is shared
public sealed class ResNetTests(ITestOutputHelper output)
{
    private static readonly Device Meta = new(DeviceType.META);

    private static readonly Lazy<Dictionary<string, Tensor>> Golden = new(() => GoldenTensors.Load("resnet_golden.safetensors"));

    private static ResNetConfig Tiny3d => ResNetConfig.Tiny with { InChannels = 1, SpatialDims = 3, StemWidth = 4, Planes = [2, 4, 8, 16] };

    [Fact]
    public void RgbImageInEvalModeMatchesTorchvision() => Check("resnet2d_eval_rgb", ResNetConfig.Tiny, train: false);

    [Fact]
    public void GreyImageInTrainModeMatchesTorchvisionIncludingRunningStatistics() => Check("resnet2d_train_grey", ResNetConfig.Tiny with { InChannels = 1 }, train: true);

    [Fact]
    public void VolumeInEvalModeMatchesTorchvisionStagesIn3d() => Check("resnet3d_eval", Tiny3d, train: false);

    [Fact]
    public void VolumeInTrainModeMatchesTorchvisionStagesIn3d() => Check("resnet3d_train", Tiny3d, train: true);

    /// <summary>
    /// The same goldens on one thread with batches below 16: libtorch's BLAS regime, where the network takes its other routes
    /// (unstrided 1x1 convolutions dilated through oneDNN, 2D stages channels-last, 3x3x3 convolutions of maps of at most
    /// 8 voxels as one matrix product: the 3D inputs here reach layer3 at 2 x 2 x 1 / 1 x 1 x 2 and layer4 at 1^3).
    /// </summary>
    [Theory]
    [InlineData("resnet2d_eval_rgb", 2, false)]
    [InlineData("resnet2d_train_grey", 2, true)]
    [InlineData("resnet3d_eval", 3, false)]
    [InlineData("resnet3d_train", 3, true)]
    public void OneThreadRoutesMatchTorchvision(string name, int dims, bool train)
    {
        var previous = get_num_threads();
        set_num_threads(1);
        try
        {
            var config = dims == 3 ? Tiny3d : train ? ResNetConfig.Tiny with { InChannels = 1 } : ResNetConfig.Tiny;
            Check(name, config, train);
        }
        finally
        {
            set_num_threads(previous);
        }
    }

    [Theory]
    [InlineData(2, 5, 7, 2, 2, 2, 1)]
    [InlineData(1, 3, 4, 1, 2, 1, 1)]
    [InlineData(2, 4, 6, 4, 3, 4, 2)]
    [InlineData(1, 3, 2, 3, 3, 3, 2)]
    [InlineData(1, 2, 3, 5, 1, 2, 1)]
    public void SmallMapMatrixProductEqualsConv3dWithGradients(long n, long c, long o, long d, long h, long w, long stride)
    {
        using var scope = NewDisposeScope();
        using var generator = new Generator(7);
        var x = randn([n, c, d, h, w], dtype: ScalarType.Float64, generator: generator);
        var weight = randn([o, c, 3, 3, 3], dtype: ScalarType.Float64, generator: generator);
        (Tensor Y, Tensor Dx, Tensor Dw) Run(Func<Tensor, Tensor, Tensor> conv)
        {
            var xr = x.detach().requires_grad_();
            var wr = weight.detach().requires_grad_();
            var y = conv(xr, wr);
            y.backward([ones_like(y) + y.detach()]);
            return (y.detach(), xr.grad!, wr.grad!);
        }

        var expected = Run((xi, wi) => nn.functional.conv3d(xi, wi, strides: [stride, stride, stride], padding: [1, 1, 1]));
        var actual = Run((xi, wi) => ResNet.Im2ColConv3d(xi, wi, stride));
        Assert.Equal(expected.Y.shape, actual.Y.shape);
        Assert.True(allclose(expected.Y, actual.Y, rtol: 0, atol: 1e-10), "output");
        Assert.True(allclose(expected.Dx, actual.Dx, rtol: 0, atol: 1e-10), "input gradient");
        Assert.True(allclose(expected.Dw, actual.Dw, rtol: 0, atol: 1e-10), "weight gradient");
    }

    [Fact]
    public void ResNet50HasTorchvisionNamesShapesAndCount()
    {
        var (keys, count) = TorchvisionKeys();
        using var model = new ResNet(ResNetConfig.ResNet50 with { NumClasses = 1000 }, Meta);
        var ours = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        Assert.Equal(keys.Keys.Order(StringComparer.Ordinal), ours.Keys.Order(StringComparer.Ordinal));
        foreach (var (name, shape) in keys)
        {
            Assert.True(shape.SequenceEqual(ours[name]), $"{name}: torchvision [{string.Join(", ", shape)}], MedVlp [{string.Join(", ", ours[name])}]");
        }

        Assert.Equal(count, model.parameters().Sum(p => p.numel()));
        Assert.Equal(2048, model.Config.FeatureWidth);
    }

    [Fact]
    public void TorchVisionNuGetResNet50ParameterNamesAreTorchvisions()
    {
        // The question the issue asks: can MedVlp use the TorchVision package's model? Its names are torchvision's, but
        // it is 2D and 3-channel only and exposes no layer4 map, so MedVlp's ResNet (same names) is used instead.
        var (keys, _) = TorchvisionKeys();
        using var model = torchvision.models.resnet50(device: Meta);
        var theirs = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        var missing = keys.Keys.Except(theirs.Keys).Order(StringComparer.Ordinal).ToArray();
        var extra = theirs.Keys.Except(keys.Keys).Order(StringComparer.Ordinal).ToArray();
        output.WriteLine($"TorchVision NuGet resnet50: {theirs.Count} keys; missing vs torchvision {missing.Length} ({string.Join(", ", missing.Take(5))}), extra {extra.Length} ({string.Join(", ", extra.Take(5))})");
        Assert.Empty(missing);
        Assert.Empty(extra);
    }

    [Fact]
    public void FullSizeFeaturesHaveTheLayer4MapAndA2048Feature()
    {
        // libtorch has no meta kernel for convolutions, so the full sizes run on the CPU on small inputs.
        using var image = new ResNet(ResNetConfig.ResNet50 with { InChannels = 1 });
        image.eval();
        using var features = image.Features(randn([2, 1, 64, 96]));
        Assert.Equal([2L, 2048, 2, 3], features.Map.shape);
        Assert.Equal([2L, 2048], features.Pooled.shape);
        using var volume = new ResNet(ResNetConfig.ResNet50 with { InChannels = 1, SpatialDims = 3 });
        volume.eval();
        using var features3d = volume.Features(randn([1, 1, 32, 64, 32]));
        Assert.Equal([1L, 2048, 1, 2, 1], features3d.Map.shape);
        Assert.Equal([1L, 2048], features3d.Pooled.shape);
        Assert.Contains("layer1.0.conv1.weight", volume.state_dict().Keys);
        Assert.Equal([64L, 1, 7, 7, 7], volume.state_dict()["conv1.weight"].shape);
    }

    [Fact]
    public void BadInputAndSizesAreRejectedWithClearMessages()
    {
        using var model = new ResNet(ResNetConfig.Tiny with { InChannels = 1 });
        var wrongChannels = Assert.Throws<ArgumentException>(() => model.Features(zeros([1, 3, 32, 32])));
        Assert.Contains("expected [B, 1, H, W]", wrongChannels.Message, StringComparison.Ordinal);
        var wrongRank = Assert.Throws<ArgumentException>(() => model.Features(zeros([1, 1, 8, 32, 32])));
        Assert.Contains("got [1, 1, 8, 32, 32]", wrongRank.Message, StringComparison.Ordinal);
        Assert.Contains("InChannels", Assert.Throws<ArgumentException>(() => new ResNet(ResNetConfig.Tiny with { InChannels = 2 })).Message, StringComparison.Ordinal);
        Assert.Contains("SpatialDims", Assert.Throws<ArgumentException>(() => new ResNet(ResNetConfig.Tiny with { SpatialDims = 1 })).Message, StringComparison.Ordinal);
        Assert.Contains("four stages", Assert.Throws<ArgumentException>(() => new ResNet(ResNetConfig.Tiny with { Blocks = [1, 1, 1] })).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ATrainingStepLeavesNoTensorAlive()
    {
        using var model = new ResNet(ResNetConfig.Tiny with { InChannels = 1, NumClasses = 3 });
        using var optimizer = optim.AdamW(model.parameters(), 1e-3);
        using var x = randn(4, 1, 32, 32);
        using var y = tensor(new long[] { 0, 1, 2, 1 });
        model.train();
        void Step()
        {
            using var scope = NewDisposeScope();
            optimizer.zero_grad();
            nn.functional.cross_entropy(model.forward(x), y).backward();
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

    private static (Dictionary<string, long[]> Keys, long Count) TorchvisionKeys()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(TestData.Golden("resnet50_keys.json")));
        var keys = doc.RootElement.GetProperty("keys").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.EnumerateArray().Select(v => v.GetInt64()).ToArray());
        return (keys, doc.RootElement.GetProperty("parameters").GetInt64());
    }

    private static Tensor Get(string key) => Golden.Value.TryGetValue(key, out var t) ? t : throw new KeyNotFoundException($"golden key {key}");

    private void Check(string name, ResNetConfig config, bool train)
    {
        using var scope = NewDisposeScope();
        using var model = new ResNet(config);

        // Train mode runs in float64 as the reference does: its BatchNorm gradients through five batch normalisations
        // amplify float32 rounding past 1e-5 in the stem's weight gradient (about 2e-5 in float32 on both sides).
        var dtype = train ? ScalarType.Float64 : ScalarType.Float32;
        model.to(dtype);
        var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var buffers = model.named_buffers().Where(b => !b.name.EndsWith("num_batches_tracked", StringComparison.Ordinal)).ToDictionary(b => b.name, b => b.buffer);
        string[] Golden(string kind) => ResNetTests.Golden.Value.Keys.Where(k => k.StartsWith($"{name}/{kind}/", StringComparison.Ordinal)).Select(k => k[(name.Length + kind.Length + 2)..]).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(Golden("param"), parameters.Keys.Order(StringComparer.Ordinal).ToArray());
        Assert.Equal(Golden("buffer"), buffers.Keys.Order(StringComparer.Ordinal).ToArray());
        using (no_grad())
        {
            foreach (var (key, p) in parameters)
            {
                p.copy_(Get($"{name}/param/{key}"));
            }

            foreach (var (key, b) in buffers)
            {
                b.copy_(Get($"{name}/buffer/{key}"));
            }
        }

        model.train(train);
        var x = Get($"{name}/input/x").to(dtype).clone().requires_grad_(true); // a copy: the cached golden input must not collect gradients across tests
        var features = model.Features(x);
        var worst = BlocksGolden.AssertClose(Get($"{name}/map"), features.Map, $"{name} map");
        worst = Math.Max(worst, BlocksGolden.AssertClose(Get($"{name}/pooled"), features.Pooled, $"{name} pooled"));
        ((features.Map * Get($"{name}/probe_map").to(dtype)).sum() + (features.Pooled * Get($"{name}/probe_pooled").to(dtype)).sum()).backward();
        foreach (var (key, p) in parameters)
        {
            Assert.True(p.grad is not null, $"{name}: no gradient reached {key}");
            worst = Math.Max(worst, BlocksGolden.AssertClose(Get($"{name}/grad/{key}"), p.grad!, $"{name} grad {key}"));
        }

        worst = Math.Max(worst, BlocksGolden.AssertClose(Get($"{name}/grad_input/x"), x.grad!, $"{name} grad input"));
        var after = Golden("after");
        Assert.Equal(train ? buffers.Keys.Order(StringComparer.Ordinal).ToArray() : [], after);
        foreach (var key in after)
        {
            worst = Math.Max(worst, BlocksGolden.AssertClose(Get($"{name}/after/{key}"), buffers[key], $"{name} running statistic {key}"));
        }

        Assert.Equal(dtype, features.Map.dtype);
        output.WriteLine($"{name} ({dtype}): {parameters.Count} parameters, {buffers.Count} buffers, largest difference {worst:E2}");
    }
}
