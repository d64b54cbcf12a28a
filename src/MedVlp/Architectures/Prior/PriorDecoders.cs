using MedVlp.Modeling;
using MedVlp.Modeling.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace MedVlp.Architectures.Prior;

/// <summary>
/// PRIOR's image reconstruction decoder (released <c>decoders/image.py</c> <c>ImageDecoder</c>): channel dropout on the
/// local image map, concatenation with the text-conditioned map c_i, five blocks (nearest upsampling to twice the size,
/// then two 3x3 convolutions without bias, each with BatchNorm and ReLU; the width halves per block, 2D -> D -> ... ->
/// 2D/32), a 3x3 head to one channel, and the L1 loss to the input image (bilinearly resized, corners aligned, when the
/// sizes differ). Names: <c>blocks.{i}.conv1.0</c> (conv), <c>blocks.{i}.conv1.1</c> (BatchNorm), <c>conv2</c>, <c>output_head.0</c>.
/// In 3D every convolution, norm and upsampling is 3D.
/// </summary>
public sealed class PriorImageDecoder : Module<Tensor, Tensor, Tensor>
{
#pragma warning disable IDE1006, SA1300 // State-dict names follow the released code.
    private readonly Module<Tensor, Tensor> image_dropout;
    private readonly ModuleList<DecoderBlock> blocks;
    private readonly Sequential output_head;
#pragma warning restore IDE1006, SA1300
    private readonly int _dims;

    /// <summary>Creates the decoder.</summary>
    /// <param name="inputChannels">Channels after the concatenation (2 x D; released 1536).</param>
    /// <param name="spatialDims">2 (images) or 3 (volumes).</param>
    /// <param name="dropout">Channel dropout of the image map (released 0.5).</param>
    /// <param name="outputChannels">Channels of the reconstruction (released: 1, grey).</param>
    /// <param name="device">Where the parameters live.</param>
    public PriorImageDecoder(int inputChannels, int spatialDims, double dropout, int outputChannels = 1, Device? device = null)
        : base(nameof(PriorImageDecoder))
    {
        _dims = spatialDims;
        image_dropout = spatialDims == 2 ? Dropout2d(dropout) : Dropout3d(dropout);
        var list = new List<DecoderBlock>();
        var width = inputChannels;
        for (var i = 0; i < 5; i++)
        {
            list.Add(new DecoderBlock(width, width / 2, spatialDims, device));
            width /= 2;
        }

        blocks = new ModuleList<DecoderBlock>([.. list]);
        output_head = Sequential(spatialDims == 2
            ? Conv2d(width, outputChannels, 3, padding: 1, device: device)
            : Conv3d(width, outputChannels, 3, padding: 1, device: device));
        RegisterComponents();
    }

    /// <summary>Reconstructs the image from the local image map and its text context map (both B x D x h x w [x d]).</summary>
    public override Tensor forward(Tensor imageMap, Tensor textMap)
    {
        using var scope = NewDisposeScope();
        var z = cat([image_dropout.forward(imageMap), textMap], 1);
        foreach (var block in blocks)
        {
            z = block.forward(z);
        }

        return scope.MoveToOuter(output_head.forward(z));
    }

    /// <summary>The released <c>loss_fn</c>: L1 between the reconstruction and the image, the image resized (bilinear or
    /// trilinear, corners aligned) to the reconstruction's size when they differ.</summary>
    public Tensor Loss(Tensor reconstruction, Tensor image)
    {
        ArgumentNullException.ThrowIfNull(reconstruction);
        ArgumentNullException.ThrowIfNull(image);
        using var scope = NewDisposeScope();
        var target = image;
        if (!image.shape.Skip(2).SequenceEqual(reconstruction.shape.Skip(2)))
        {
            target = F.interpolate(image, [.. reconstruction.shape.Skip(2)], mode: _dims == 2 ? InterpolationMode.Bilinear : InterpolationMode.Trilinear, align_corners: true);
        }

        return scope.MoveToOuter(F.l1_loss(reconstruction, target));
    }

    /// <summary>One upsampling block: nearest upsampling by 2, then two conv-BN-ReLU (segmentation_models_pytorch's <c>Conv2dReLU</c>).</summary>
    private sealed class DecoderBlock : Module<Tensor, Tensor>
    {
#pragma warning disable IDE1006, SA1300 // State-dict names follow the released code.
        private readonly Sequential conv1;
        private readonly Sequential conv2;
#pragma warning restore IDE1006, SA1300

        public DecoderBlock(int inChannels, int outChannels, int dims, Device? device)
            : base(nameof(DecoderBlock))
        {
            conv1 = ConvReLU(inChannels, outChannels, dims, device);
            conv2 = ConvReLU(outChannels, outChannels, dims, device);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            using var scope = NewDisposeScope();
            var size = x.shape.Skip(2).Select(s => s * 2).ToArray();
            var up = F.interpolate(x, size, mode: InterpolationMode.Nearest);
            return scope.MoveToOuter(conv2.forward(conv1.forward(up)));
        }

        private static Sequential ConvReLU(int inChannels, int outChannels, int dims, Device? device) => dims == 2
            ? Sequential(Conv2d(inChannels, outChannels, 3, padding: 1, bias: false, device: device), BatchNorm2d(outChannels, device: device), ReLU())
            : Sequential(Conv3d(inChannels, outChannels, 3, padding: 1, bias: false, device: device), BatchNorm3d(outChannels, device: device), ReLU());
    }
}

/// <summary>
/// PRIOR's sentence decoder (released <c>decoders/sentence.py</c> <c>CrossModalityBertDecoder</c>): a Hugging Face
/// <c>BertModel</c> without pooler configured as a decoder with cross-attention, run on <c>inputs_embeds</c> (the learned
/// queries, plus position and token-type embeddings, LayerNorm) with the causal self-attention mask Hugging Face applies
/// to decoders, every layer cross-attending to the local image tokens. Names: <c>embeddings.*</c>, <c>encoder.layer.{i}.attention</c>,
/// <c>.crossattention</c>, <c>.intermediate</c>, <c>.output</c>.
/// </summary>
public sealed class PriorSentenceDecoder : Module<Tensor, Tensor, Tensor>, INoWeightDecay
{
#pragma warning disable IDE1006, SA1300 // State-dict names follow Hugging Face.
    private readonly BertEmbeddings embeddings;
    private readonly BertEncoder encoder;
#pragma warning restore IDE1006, SA1300

    /// <summary>Creates the decoder with BERT's initialisation.</summary>
    /// <param name="config">Sizes (the hidden size is also the width of the image tokens it attends to).</param>
    /// <param name="device">Where the parameters live.</param>
    public PriorSentenceDecoder(BertConfig config, Device? device = null)
        : base(nameof(PriorSentenceDecoder))
    {
        ArgumentNullException.ThrowIfNull(config);
        embeddings = new BertEmbeddings(
            new BertEmbeddingsOptions
            {
                VocabSize = config.VocabSize,
                HiddenSize = config.HiddenSize,
                MaxPositionEmbeddings = config.MaxPositionEmbeddings,
                TypeVocabSize = config.TypeVocabSize,
                LayerNormEps = config.LayerNormEps,
                HiddenDropout = config.HiddenDropoutProb,
            },
            device);
        var layer = BertModel.LayerOptions(config) with { CrossAttentionWidth = config.HiddenSize };
        encoder = new BertEncoder(Enumerable.Repeat(layer, config.NumHiddenLayers), device);
        RegisterComponents();
        if (device is null || device.type != DeviceType.META)
        {
            BertModel.InitializeWeights(this);
        }
    }

    /// <summary>Decodes <paramref name="queries"/> (B x Q x D) against <paramref name="imageTokens"/> (B x N x D): B x Q x D.</summary>
    public override Tensor forward(Tensor queries, Tensor imageTokens)
    {
        ArgumentNullException.ThrowIfNull(queries);
        ArgumentNullException.ThrowIfNull(imageTokens);
        using var scope = NewDisposeScope();
        var hidden = embeddings.forward(null, queries);
        var causal = AttentionMask.Causal(queries.shape[1], queries.shape[1], queries.device);
        return scope.MoveToOuter(encoder.forward(hidden, causal, imageTokens));
    }

    /// <inheritdoc/>
    public IEnumerable<string> NoWeightDecayParameterNames() => NoWeightDecay.Compose(this);
}
