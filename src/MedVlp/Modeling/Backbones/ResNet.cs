using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace MedVlp.Modeling.Backbones;

/// <summary>
/// Sizes of a bottleneck <see cref="ResNet"/> (torchvision's <c>ResNet</c> with <c>Bottleneck</c> blocks). The defaults
/// are ResNet-50; <see cref="Tiny"/> keeps the layout with small widths for tests.
/// </summary>
public sealed record ResNetConfig
{
    /// <summary>torchvision's <c>resnet50()</c>: blocks 3, 4, 6, 3; stem 64; planes 64, 128, 256, 512; expansion 4 (2048 features).</summary>
    public static ResNetConfig ResNet50 { get; } = new();

    /// <summary>A CPU test size with ResNet-50's layout: one block per stage, stem 8, planes 4, 8, 16, 32 (128 features).</summary>
    public static ResNetConfig Tiny { get; } = new() { Blocks = [1, 1, 1, 1], StemWidth = 8, Planes = [4, 8, 16, 32] };

    /// <summary>Bottleneck blocks per stage (<c>layer1</c> .. <c>layer4</c>).</summary>
    public IReadOnlyList<int> Blocks { get; init; } = [3, 4, 6, 3];

    /// <summary>Output channels of the stem convolution (<c>conv1</c>).</summary>
    public int StemWidth { get; init; } = 64;

    /// <summary>Inner width of each stage's bottlenecks; a stage outputs <c>Planes[i] * Expansion</c> channels.</summary>
    public IReadOnlyList<int> Planes { get; init; } = [64, 128, 256, 512];

    /// <summary>Bottleneck expansion (4 in torchvision).</summary>
    public int Expansion { get; init; } = 4;

    /// <summary>Input channels: 3 (RGB, torchvision) or 1 (a grey X-ray, slice or volume).</summary>
    public int InChannels { get; init; } = 3;

    /// <summary>2 for images (Conv2d, BatchNorm2d) or 3 for volumes (Conv3d, BatchNorm3d: the same stages in 3D).</summary>
    public int SpatialDims { get; init; } = 2;

    /// <summary>Classes of the final <c>fc</c> layer, or null for a feature extractor without one (torchvision: 1000).</summary>
    public int? NumClasses { get; init; }

    /// <summary>Width of the pooled feature (<c>Planes[3] * Expansion</c>: 2048 for ResNet-50).</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public int FeatureWidth => Planes[^1] * Expansion;

    /// <summary>Throws when the sizes cannot build a network.</summary>
    public void Validate()
    {
        if (Blocks.Count != 4 || Planes.Count != 4 || Blocks.Any(b => b <= 0) || Planes.Any(p => p <= 0))
        {
            throw new ArgumentException($"A ResNet needs four stages with positive block counts and planes, got blocks [{string.Join(", ", Blocks)}], planes [{string.Join(", ", Planes)}].");
        }

        if (StemWidth <= 0 || Expansion <= 0)
        {
            throw new ArgumentException($"A ResNet needs a positive stem width and expansion, got {StemWidth} and {Expansion}.");
        }

        if (InChannels is not (1 or 3))
        {
            throw new ArgumentException($"ResNet InChannels must be 1 or 3, got {InChannels}.");
        }

        if (SpatialDims is not (2 or 3))
        {
            throw new ArgumentException($"ResNet SpatialDims must be 2 (images) or 3 (volumes), got {SpatialDims}.");
        }

        if (NumClasses is <= 0)
        {
            throw new ArgumentException($"ResNet NumClasses must be positive or null, got {NumClasses}.");
        }
    }
}

/// <summary>The two outputs of a <see cref="ResNet"/> used as an encoder.</summary>
/// <param name="Map">The <c>layer4</c> feature map, [B, C, h, w] or [B, C, d, h, w].</param>
/// <param name="Pooled">Its global average, [B, C] (C = 2048 for ResNet-50).</param>
public sealed record ResNetFeatures(Tensor Map, Tensor Pooled) : IDisposable
{
    /// <inheritdoc/>
    public void Dispose()
    {
        Map.Dispose();
        Pooled.Dispose();
    }
}

/// <summary>
/// A bottleneck ResNet in torchvision's layout and parameter names (<c>conv1</c>, <c>bn1</c>, <c>layer1.0.conv1</c>,
/// <c>layer1.0.downsample.0</c>, ..., <c>fc</c>), so torchvision's <c>resnet50</c> state dicts (and weights released in
/// its names, such as LVM-Med's) load as they are. 2D or 3D (<see cref="ResNetConfig.SpatialDims"/>), 1 or 3 input
/// channels; <see cref="Features"/> gives the <c>layer4</c> map and the pooled feature.
/// </summary>
public sealed class ResNet : Module<Tensor, Tensor>
{
#pragma warning disable IDE1006, SA1300 // State-dict names follow torchvision.
    private readonly Module<Tensor, Tensor> conv1;
    private readonly Module<Tensor, Tensor> bn1;
    private readonly Module<Tensor, Tensor> maxpool;
    private readonly Sequential layer1;
    private readonly Sequential layer2;
    private readonly Sequential layer3;
    private readonly Sequential layer4;
    private readonly Linear? fc;
#pragma warning restore IDE1006, SA1300

    /// <summary>Builds the network with torchvision's initialisation (Kaiming normal fan-out convolutions, BN weight 1, bias 0).</summary>
    /// <param name="config">Sizes.</param>
    /// <param name="device">Where the parameters live (<c>meta</c> to inspect a full size without memory).</param>
    public ResNet(ResNetConfig config, Device? device = null)
        : base(nameof(ResNet))
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
        var d = config.SpatialDims;
        conv1 = Conv(d, config.InChannels, config.StemWidth, 7, 2, 3, device);
        bn1 = Norm(d, config.StemWidth, device);
        maxpool = d == 2 ? MaxPool2d(3, 2, 1) : MaxPool3d(3, 2, 1);
        var inWidth = config.StemWidth;
        var stages = new Sequential[4];
        for (var s = 0; s < 4; s++)
        {
            var blocks = new List<Module<Tensor, Tensor>>();
            for (var b = 0; b < config.Blocks[s]; b++)
            {
                var stride = s > 0 && b == 0 ? 2 : 1;
                blocks.Add(new Bottleneck(d, inWidth, config.Planes[s], config.Expansion, stride, device));
                inWidth = config.Planes[s] * config.Expansion;
            }

            stages[s] = Sequential(blocks.ToArray());
        }

        (layer1, layer2, layer3, layer4) = (stages[0], stages[1], stages[2], stages[3]);
        if (config.NumClasses is int classes)
        {
            fc = Linear(config.FeatureWidth, classes, device: device);
        }

        RegisterComponents();
        if (device is null || device.type != DeviceType.META)
        {
            using var noGrad = no_grad();
            foreach (var (name, p) in named_parameters())
            {
                if (p.dim() > 2)
                {
                    init.kaiming_normal_(p, mode: init.FanInOut.FanOut, nonlinearity: init.NonlinearityType.ReLU);
                }
                else if (name.Contains(".bn", StringComparison.Ordinal) || name.StartsWith("bn", StringComparison.Ordinal) || name.Contains("downsample.1", StringComparison.Ordinal))
                {
                    if (name.EndsWith("weight", StringComparison.Ordinal))
                    {
                        p.fill_(1);
                    }
                    else
                    {
                        p.zero_();
                    }
                }
            }
        }
    }

    /// <summary>The sizes.</summary>
    public ResNetConfig Config { get; }

    /// <summary>Runs the stem and the four stages: the <c>layer4</c> map and its global average pool.</summary>
    /// <param name="x">[B, InChannels, H, W] (2D) or [B, InChannels, D, H, W] (3D).</param>
    public ResNetFeatures Features(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        var expected = Config.SpatialDims + 2;
        if (x.dim() != expected || x.shape[1] != Config.InChannels)
        {
            throw new ArgumentException($"ResNet input: expected [B, {Config.InChannels}, {(Config.SpatialDims == 2 ? "H, W" : "D, H, W")}], got [{string.Join(", ", x.shape)}].", nameof(x));
        }

        using var scope = NewDisposeScope();
        // Where libtorch would run the 1x1 convolutions through MKL (see Pointwise), 2D runs channels-last (see ChannelsLast);
        // the map goes back to the usual contiguous layout at the end, so callers (PRIOR's plain reshape of the layer4 map)
        // see the same strides as before. Twice: a 1-channel image has the same strides in both layouts, so libtorch gives
        // the stem's output in the usual one; the second call copies nothing when the stem already gave channels-last.
        Tensor h;
        if (BlasRegime(x) && x.dim() == 4)
        {
            h = ChannelsLast(maxpool.forward(F.relu(bn1.forward(conv1.forward(ChannelsLast(x))), inplace: true)));
        }
        else
        {
            h = maxpool.forward(F.relu(bn1.forward(conv1.forward(x)), inplace: true));
        }

        h = layer4.forward(layer3.forward(layer2.forward(layer1.forward(h)))).contiguous();
        var pooled = h.flatten(2).mean([2]);
        return new ResNetFeatures(scope.MoveToOuter(h), scope.MoveToOuter(pooled));
    }

    /// <summary>The pooled feature [B, FeatureWidth], or the <c>fc</c> logits when the network has a classifier (torchvision's forward).</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var features = Features(x);
        return scope.MoveToOuter(fc is null ? features.Pooled : fc.forward(features.Pooled));
    }

    /// <summary>
    /// The same 2D values in channels-last memory order (NHWC strides behind the usual NCHW shape): libtorch then keeps
    /// every layer's output channels-last, and its oneDNN convolutions (forward and backward), batch norm and max pooling
    /// run faster on it than on NCHW (benchmarks/reference/resnet_results.md, `conv-ops`). 3D stays NCDHW: there oneDNN's
    /// channels-last 3x3x3 convolutions of the late stages are up to 4x slower than its NCDHW ones.
    /// </summary>
    private static Tensor ChannelsLast(Tensor x)
    {
        return x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);
    }

    private static Module<Tensor, Tensor> Conv(int dims, long inChannels, long outChannels, long kernel, long stride, long padding, Device? device) => dims == 2
        ? Conv2d(inChannels, outChannels, kernel, stride: stride, padding: padding, bias: false, device: device)
        : Conv3d(inChannels, outChannels, kernel, stride: stride, padding: padding, bias: false, device: device);

    /// <summary>
    /// Whether libtorch would compute an unstrided 1x1 convolution of <paramref name="x"/> as BLAS matrix products (its rule:
    /// CPU, one thread, batch below 16). Only then does the network change how it runs (<see cref="Pointwise"/>, channels-last
    /// 2D stages); otherwise libtorch already runs every convolution through oneDNN, as PyTorch does, and nothing changes.
    /// </summary>
    private static bool BlasRegime(Tensor x) => x.device_type == DeviceType.CPU && x.shape[0] < 16 && get_num_threads() == 1;

    /// <summary>
    /// A 1x1 (1x1x1) convolution with stride 1. libtorch (1.13 to 2.10) computes one on a single thread with a batch below 16
    /// as matrix products through its BLAS, MKL, whose kernels on AMD CPUs are AVX2: about half the speed of OpenBLAS's
    /// AVX-512 kernels (which PyTorch builds on OpenBLAS use) on the benchmark machine, and of oneDNN's own
    /// (benchmarks/reference/resnet_results.md). In exactly that case this runs it with dilation 2, which cannot change the
    /// output (a one-tap kernel has no taps to spread) and which libtorch always sends to oneDNN, where its 3x3 and
    /// strided convolutions (and every convolution with more threads or a larger batch) already run.
    /// </summary>
    private static Tensor Pointwise(Module<Tensor, Tensor> conv, Tensor x)
    {
        if (!BlasRegime(x))
        {
            return conv.forward(x);
        }

        var weight = ((Convolution)conv).weight!;
        return x.dim() == 4 ? F.conv2d(x, weight, dilation: [2, 2]) : F.conv3d(x, weight, dilation: [2, 2, 2]);
    }

    /// <summary>
    /// A bottleneck's 3x3x3 convolution (padding 1). In libtorch's BLAS regime (<see cref="BlasRegime"/>) on a 3D map whose
    /// output has at most <see cref="SmallMapVoxels"/> voxels per volume (<c>layer4</c> of a 64^3 input: 2^3), it runs as one
    /// matrix product over the 27 shifted copies of the zero-padded input (<see cref="Im2ColConv3d"/>): oneDNN 3.7's
    /// kernels (libtorch 2.10) spend 2-2.5x the time of that product on maps this small, where most taps read padding
    /// (benchmarks/reference/resnet_results.md). Everywhere else (2D, larger maps, more threads, GPU) it is the module's own
    /// convolution.
    /// </summary>
    private static Tensor SmallMap(Module<Tensor, Tensor> conv, Tensor x, int stride)
    {
        if (x.dim() != 5 || !BlasRegime(x))
        {
            return conv.forward(x);
        }

        var voxels = 1L;
        for (var axis = 2; axis < 5; axis++)
        {
            voxels *= ((x.shape[axis] - 1) / stride) + 1;
        }

        return voxels > SmallMapVoxels ? conv.forward(x) : Im2ColConv3d(x, ((Convolution)conv).weight!, stride);
    }

    /// <summary>The largest output map (voxels per volume) that <see cref="SmallMap"/> computes as a matrix product.</summary>
    internal const long SmallMapVoxels = 8;

    /// <summary>
    /// <c>conv3d(x, weight, stride, padding: 1)</c> for a 3x3x3 kernel without bias, as a matrix product: the 27 strided
    /// windows of the zero-padded input stacked along the channels (tap order kd, kh, kw, matching the weight's layout)
    /// times the weight viewed as [out, in * 27]. Same values to rounding; autograd gives both gradients.
    /// </summary>
    internal static Tensor Im2ColConv3d(Tensor x, Tensor weight, long stride)
    {
        using var scope = NewDisposeScope();
        long n = x.shape[0], c = x.shape[1], o = weight.shape[0];
        long d = ((x.shape[2] - 1) / stride) + 1, h = ((x.shape[3] - 1) / stride) + 1, w = ((x.shape[4] - 1) / stride) + 1;
        var padded = F.pad(x, [1, 1, 1, 1, 1, 1]);
        var taps = new List<Tensor>(27);
        for (var i = 0; i < 3; i++)
        {
            for (var j = 0; j < 3; j++)
            {
                for (var k = 0; k < 3; k++)
                {
                    taps.Add(padded[
                        TensorIndex.Colon,
                        TensorIndex.Colon,
                        TensorIndex.Slice(i, i + (stride * (d - 1)) + 1, stride),
                        TensorIndex.Slice(j, j + (stride * (h - 1)) + 1, stride),
                        TensorIndex.Slice(k, k + (stride * (w - 1)) + 1, stride)]);
                }
            }
        }

        var columns = stack(taps, 2).view(n, c * 27, d * h * w);
        return scope.MoveToOuter(matmul(weight.view(o, c * 27), columns).view(n, o, d, h, w));
    }

    private static Module<Tensor, Tensor> Norm(int dims, long features, Device? device) => dims == 2
        ? BatchNorm2d(features, device: device)
        : BatchNorm3d(features, device: device);

    /// <summary>torchvision's <c>Bottleneck</c> (stride on the 3x3 convolution, "ResNet V1.5").</summary>
    private sealed class Bottleneck : Module<Tensor, Tensor>
    {
#pragma warning disable IDE1006, SA1300 // State-dict names follow torchvision.
        private readonly Module<Tensor, Tensor> conv1;
        private readonly Module<Tensor, Tensor> bn1;
        private readonly Module<Tensor, Tensor> conv2;
        private readonly Module<Tensor, Tensor> bn2;
        private readonly Module<Tensor, Tensor> conv3;
        private readonly Module<Tensor, Tensor> bn3;
        private readonly Sequential? downsample;
#pragma warning restore IDE1006, SA1300
        private readonly int downsampleStride;
        private readonly int conv2Stride;

        public Bottleneck(int dims, int inWidth, int planes, int expansion, int stride, Device? device)
            : base(nameof(Bottleneck))
        {
            var outWidth = planes * expansion;
            conv1 = Conv(dims, inWidth, planes, 1, 1, 0, device);
            bn1 = Norm(dims, planes, device);
            conv2 = Conv(dims, planes, planes, 3, stride, 1, device);
            conv2Stride = stride;
            bn2 = Norm(dims, planes, device);
            conv3 = Conv(dims, planes, outWidth, 1, 1, 0, device);
            bn3 = Norm(dims, outWidth, device);
            if (stride != 1 || inWidth != outWidth)
            {
                downsample = Sequential(Conv(dims, inWidth, outWidth, 1, stride, 0, device), Norm(dims, outWidth, device));
                downsampleStride = stride;
            }

            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            using var scope = NewDisposeScope();
            // In place where torchvision is (ReLU after batch norm, the residual sum): batch norm's backward needs its input,
            // not its output, so autograd allows it, and it saves a tensor the size of the block's output per op.
            var h = F.relu(bn1.forward(Pointwise(conv1, x)), inplace: true);
            h = F.relu(bn2.forward(SmallMap(conv2, h, conv2Stride)), inplace: true);
            h = bn3.forward(Pointwise(conv3, h));
            h.add_(downsample is null ? x : Downsample(downsample, x));
            return scope.MoveToOuter(F.relu(h, inplace: true));
        }

        /// <summary><c>downsample</c>: its 1x1 convolution (through <see cref="Pointwise"/> when unstrided), then its batch norm.</summary>
        private Tensor Downsample(Sequential path, Tensor x)
        {
            if (downsampleStride != 1)
            {
                return path.forward(x);
            }

            var parts = path.children().Cast<Module<Tensor, Tensor>>().ToArray();
            return parts[1].forward(Pointwise(parts[0], x));
        }
    }
}
