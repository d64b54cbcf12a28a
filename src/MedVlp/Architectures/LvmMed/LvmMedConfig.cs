using MedVlp.Losses;
using MedVlp.Modeling;
using MedVlp.Modeling.Backbones;

namespace MedVlp.Architectures.LvmMed;

/// <summary>
/// The sizes of the registered <c>lvmmed</c> architecture (LVM-Med, Nguyen et al., NeurIPS 2023): a torchvision-named
/// ResNet-50 (<c>encoder</c>, 2D for images and slices or 3D for volumes) and a projector (<c>projector</c>) whose
/// embeddings of two augmented views feed the graph-matching objective (<see cref="Matching"/>).
/// </summary>
/// <remarks>
/// Only the downstream code and the ResNet-50 / ViT-B weights of LVM-Med were released; the pre-training code was not.
/// The encoder is the released one (torchvision's ResNet-50, 3 input channels, so <c>lvmed_resnet50.torch</c> loads as it
/// is); the projector and every matching detail are documented defaults, each an option.
/// </remarks>
public sealed record LvmMedConfig : ArchitectureConfig
{
    /// <summary>The registry name of this architecture.</summary>
    public const string ArchitectureName = "lvmmed";

    /// <inheritdoc />
    public override string Architecture => ArchitectureName;

    /// <summary>The image encoder: torchvision's ResNet-50 without <c>fc</c> (2D or 3D, 1 or 3 input channels).</summary>
    public ResNetConfig Image { get; init; } = ResNetConfig.ResNet50;

    /// <summary>Edge of the preprocessed input in pixels (voxels for a 3D encoder). Default 224 (the released downstream code's).</summary>
    public int ImageSize { get; init; } = 224;

    /// <summary>Hidden width of the projector <c>Linear, BatchNorm1d, ReLU, Linear</c> (SimCLR/BYOL style; not released). Default 2048.</summary>
    public int ProjectionHidden { get; init; } = 2048;

    /// <summary>Width of the projected embeddings that the graphs are built on (not released). Default 256.</summary>
    public int ProjectionDim { get; init; } = 256;

    /// <summary>The graph-matching objective's options (all open in the paper; see <see cref="LvmMedMatchingConfig"/>).</summary>
    public LvmMedMatchingConfig Matching { get; init; } = new();

    /// <summary>The <c>full</c> size: ResNet-50 on 3-channel 224 x 224 images (the released encoder), projector 2048 -> 256.</summary>
    public static LvmMedConfig Full() => new();

    /// <summary>The <c>tiny</c> size for CPU tests and demos: grey 64 x 64 images, <see cref="ResNetConfig.Tiny"/> (128 features),
    /// projector 64 -> 32, and the graph-matching loss with a contrastive term of weight 1 (<see cref="LvmMedMatchingConfig.ContrastiveWeight"/>).</summary>
    public static LvmMedConfig Tiny() => new()
    {
        Image = ResNetConfig.Tiny with { InChannels = 1 },
        ImageSize = 64,
        ProjectionHidden = 64,
        ProjectionDim = 32,
        Matching = new LvmMedMatchingConfig { ContrastiveWeight = 1 },
    };

    /// <summary>The shape of one preprocessed input: [C, S, S] (2D) or [C, S, S, S] (3D).</summary>
    public IReadOnlyList<long> InputShape() => Image.SpatialDims == 2
        ? [Image.InChannels, ImageSize, ImageSize]
        : [Image.InChannels, ImageSize, ImageSize, ImageSize];

    /// <inheritdoc />
    public override void Validate()
    {
        if (Image is null)
        {
            throw new ArgumentException("the image encoder section is missing.", "image");
        }

        try
        {
            Image.Validate();
        }
        catch (ArgumentException ex)
        {
            throw new ArgumentException(ex.Message, "image", ex);
        }

        if (Image.NumClasses is not null)
        {
            throw new ArgumentException("the LVM-Med encoder has no classifier; num_classes must be null.", "image.num_classes");
        }

        ModelLimits.Check("image_size", ImageSize, 32, ModelLimits.MaxInputSize);
        ModelLimits.Check("projection_hidden", ProjectionHidden, 1, ModelLimits.MaxWidth);
        ModelLimits.Check("projection_dim", ProjectionDim, 1, ModelLimits.MaxWidth);
        if (Matching is null)
        {
            throw new ArgumentException("the matching section is missing.", "matching");
        }

        Matching.Validate();
    }
}

/// <summary>
/// LVM-Med's graph-matching objective, every detail the paper leaves open as an option (tagged unverified in the
/// method summary): each view's batch forms a k-nearest-neighbour graph on the projected embeddings, one
/// message-passing step refines the nodes, the vertex affinity mixes global cosine similarity with a local feature-map
/// similarity, the edge affinity is the cosine similarity of edge features, a solver matches view 1 to view 2 and the
/// Hamming distance to the identity is the loss, differentiated by the black-box or I-MLE estimator.
/// </summary>
public sealed record LvmMedMatchingConfig
{
    /// <summary>Neighbours per node of each view's k-NN graph. Default 5.</summary>
    public int Neighbors { get; init; } = 5;

    /// <summary><c>second</c> (vertex + edge affinities, a quadratic assignment: LVM-Med's "second-order") or <c>first</c>
    /// (vertex affinities, a linear assignment). Default <c>second</c>.</summary>
    public string Order { get; init; } = "second";

    /// <summary><c>frank_wolfe</c> (FAQ-style relaxation projected by linear assignment; second order) or <c>linear</c>
    /// (exact linear assignment of the vertex affinities). Default <c>frank_wolfe</c> for the second order.</summary>
    public string Solver { get; init; } = "frank_wolfe";

    /// <summary><c>black_box</c> (Vlastelica et al. 2020) or <c>imle</c> (Niepert et al. 2021, Sum-of-Gamma noise). Default <c>black_box</c>.</summary>
    public string Estimator { get; init; } = "black_box";

    /// <summary>Interpolation strength lambda of the estimator. Default 80 (the value the paper reports).</summary>
    public double Lambda { get; init; } = 80;

    /// <summary>Weight of the local (layer-4 feature-map) similarity added to the global cosine vertex affinity; 0 uses the
    /// global similarity alone. Default 0.5.</summary>
    public double LocalWeight { get; init; } = 0.5;

    /// <summary>Scale of the edge affinities relative to the vertex affinities (about 1/k balances the two terms). Default 0.2.</summary>
    public double EdgeWeight { get; init; } = 0.2;

    /// <summary>Refine the node embeddings by one message-passing step over the k-NN graph before the affinities
    /// (LVM-Med's message passing network). Default true.</summary>
    public bool MessagePassing { get; init; } = true;

    /// <summary>I-MLE only: temperature of the Sum-of-Gamma noise. Default 0.1.</summary>
    public double NoiseTemperature { get; init; } = 0.1;

    /// <summary>Weight of a soft first-order term added to the Hamming loss: the symmetric InfoNCE of the vertex
    /// affinities (<see cref="GraphMatchingLossOptions.ContrastiveWeight"/>). Not in the paper's description of its loss:
    /// MedVlp's option. Default 0 (the Hamming distance alone); the <c>tiny</c> size uses 1, since the Hamming distance's
    /// black-box gradient alone does not teach a randomly initialised encoder to match views in a CPU-sized run.</summary>
    public double ContrastiveWeight { get; init; }

    /// <summary>Temperature of the <see cref="ContrastiveWeight"/> term. Default 0.1.</summary>
    public double ContrastiveTemperature { get; init; } = 0.1;

    /// <summary>Throws when an option is out of range (the parameter name is the JSON field).</summary>
    public void Validate()
    {
        ModelLimits.Check("matching.neighbors", Neighbors, 1, 1024);
        if (Order is not ("first" or "second"))
        {
            throw new ArgumentException($"expected \"first\" or \"second\", found \"{Order}\".", "matching.order");
        }

        if (Solver is not ("frank_wolfe" or "linear"))
        {
            throw new ArgumentException($"expected \"frank_wolfe\" or \"linear\", found \"{Solver}\".", "matching.solver");
        }

        if (Estimator is not ("black_box" or "imle"))
        {
            throw new ArgumentException($"expected \"black_box\" or \"imle\", found \"{Estimator}\".", "matching.estimator");
        }

        if (!(Lambda > 0) || !double.IsFinite(Lambda))
        {
            throw new ArgumentException($"must be positive and finite, found {Lambda}.", "matching.lambda");
        }

        if (!(LocalWeight >= 0) || !double.IsFinite(LocalWeight) || !(EdgeWeight >= 0) || !double.IsFinite(EdgeWeight))
        {
            throw new ArgumentException($"the local and edge weights must be finite and >= 0, found {LocalWeight} and {EdgeWeight}.", "matching.local_weight");
        }

        if (!(NoiseTemperature > 0) || !double.IsFinite(NoiseTemperature))
        {
            throw new ArgumentException($"must be positive and finite, found {NoiseTemperature}.", "matching.noise_temperature");
        }

        if (!(ContrastiveWeight >= 0) || !double.IsFinite(ContrastiveWeight))
        {
            throw new ArgumentException($"must be finite and >= 0, found {ContrastiveWeight}.", "matching.contrastive_weight");
        }

        if (!(ContrastiveTemperature > 0) || !double.IsFinite(ContrastiveTemperature))
        {
            throw new ArgumentException($"must be positive and finite, found {ContrastiveTemperature}.", "matching.contrastive_temperature");
        }
    }
}
