using MedVlp.Losses;
using MedVlp.Modeling;
using MedVlp.Modeling.Backbones;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace MedVlp.Architectures.LvmMed;

/// <summary>What one LVM-Med forward of a batch of images (one view) produces.</summary>
/// <param name="Pooled">The pooled ResNet feature [B, 2048] (what downstream tasks use).</param>
/// <param name="Embedding">The projected embedding [B, ProjectionDim] (the graph nodes).</param>
/// <param name="Local">The <c>layer4</c> map as local features [B, P, 2048] (P = h w, or d h w in 3D; the local vertex affinity).</param>
public sealed record LvmMedOutput(Tensor Pooled, Tensor Embedding, Tensor Local) : IDisposable
{
    /// <inheritdoc />
    public void Dispose()
    {
        Pooled.Dispose();
        Embedding.Dispose();
        Local.Dispose();
    }
}

/// <summary>
/// LVM-Med (Nguyen et al., "LVM-Med: Learning Large-Scale Self-Supervised Vision Models for Medical Imaging via
/// Second-order Graph Matching", NeurIPS 2023): <c>encoder</c>, a torchvision-named ResNet-50 (2D, or the same stages in
/// 3D for volumes) whose state dict is the released <c>lvmed_resnet50.torch</c>'s, and <c>projector</c> = Linear,
/// BatchNorm1d, ReLU, Linear. Pre-training encodes two augmented views of every image, builds a k-NN graph per view,
/// refines the nodes by message passing and matches the graphs (<see cref="CreateLoss"/>: <see cref="GraphMatchingLoss"/>);
/// inference embeds an image by its L2-normalised pooled feature (<see cref="IImageEncoder"/>), as the released
/// downstream code uses the encoder without the projector.
/// </summary>
public sealed class LvmMedModel : CompositeModel, IImageEncoder
{
    /// <summary>The component names.</summary>
    public const string ImageComponent = "encoder", ProjectorComponent = "projector";

#pragma warning disable IDE1006, SA1300 // State-dict names: the encoder's are torchvision's.
    private readonly ResNet encoder;
    private readonly Sequential projector;
#pragma warning restore IDE1006, SA1300
    private readonly LvmMedConfig _config;

    /// <summary>Builds the model with fresh weights (torchvision's ResNet initialisation, PyTorch's Linear defaults).</summary>
    /// <param name="config">Sizes.</param>
    /// <param name="device">Where the parameters live (<c>meta</c>: the structure without memory).</param>
    public LvmMedModel(LvmMedConfig config, Device? device = null)
        : base(nameof(LvmMedModel))
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        _config = config;
        encoder = new ResNet(config.Image with { NumClasses = null }, device);
        projector = Sequential(
            Linear(config.Image.FeatureWidth, config.ProjectionHidden, device: device),
            BatchNorm1d(config.ProjectionHidden, device: device),
            ReLU(),
            Linear(config.ProjectionHidden, config.ProjectionDim, device: device));
        RegisterComponents();
    }

    /// <inheritdoc />
    public override ArchitectureConfig Config => _config;

    /// <summary>The sizes.</summary>
    public LvmMedConfig Sizes => _config;

    /// <summary>The image encoder (load released weights into it with the <c>torchvision-resnet50</c> layout).</summary>
    public ResNet ImageEncoder => encoder;

    /// <summary>The width of <see cref="EncodeImages"/>: the pooled feature (2048 for ResNet-50).</summary>
    public int EmbeddingDim => _config.Image.FeatureWidth;

    /// <inheritdoc />
    public IReadOnlyList<long> ImageInputShape => _config.InputShape();

    /// <summary>Encodes one view: pooled feature, projected embedding and local features.</summary>
    /// <param name="images">[B, C, H, W] (2D) or [B, C, D, H, W] (3D).</param>
    public LvmMedOutput Forward(Tensor images)
    {
        ArgumentNullException.ThrowIfNull(images);
        using var scope = NewDisposeScope();
        var features = encoder.Features(images);
        var local = features.Map.flatten(2).transpose(1, 2);
        var output = new LvmMedOutput(features.Pooled, projector.forward(features.Pooled), local);
        scope.MoveToOuter(output.Pooled, output.Embedding, output.Local);
        return output;
    }

    /// <summary>The L2-normalised pooled feature of preprocessed images (the released encoder's representation).</summary>
    public Tensor EncodeImages(Tensor images)
    {
        ArgumentNullException.ThrowIfNull(images);
        using var scope = NewDisposeScope();
        return scope.MoveToOuter(F.normalize(encoder.forward(images), dim: -1));
    }

    /// <summary>The graph-matching loss of <paramref name="matching"/> (the model's own <see cref="LvmMedConfig.Matching"/> when null):
    /// its message-passing layer (when on) has <see cref="LvmMedConfig.ProjectionDim"/> features and trains with the model.</summary>
    /// <param name="matching">The options; null for the model's.</param>
    /// <param name="seed">Seed of I-MLE's noise.</param>
    public GraphMatchingLoss CreateLoss(LvmMedMatchingConfig? matching = null, int seed = 42)
    {
        matching ??= _config.Matching;
        matching.Validate();
        var second = matching.Order == "second";
        return new GraphMatchingLoss(new GraphMatchingLossOptions
        {
            Order = second ? GraphMatchingOrder.Second : GraphMatchingOrder.First,
            Neighbors = matching.Neighbors,
            Solver = matching.Solver == "linear" || !second ? LinearAssignmentSolver.Instance : new FrankWolfeQapSolver(),
            Estimator = matching.Estimator == "imle" ? MatchingGradientEstimator.Imle : MatchingGradientEstimator.BlackBox,
            Lambda = matching.Lambda,
            Noise = new SumOfGammaNoiseOptions { Tau = matching.NoiseTemperature, Seed = seed },
            LocalWeight = matching.LocalWeight,
            EdgeWeight = matching.EdgeWeight,
            MessagePassingDim = matching.MessagePassing ? _config.ProjectionDim : 0,
            ContrastiveWeight = matching.ContrastiveWeight,
            ContrastiveTemperature = matching.ContrastiveTemperature,
        });
    }
}
