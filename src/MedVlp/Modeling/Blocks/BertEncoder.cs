using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace MedVlp.Modeling.Blocks;

/// <summary>A stack of <see cref="BertLayer"/>s (Hugging Face <c>BertEncoder</c>: <c>layer.{i}</c>), one options record per layer.</summary>
public sealed class BertEncoder : Module<Tensor, Tensor>, INoWeightDecay
{
#pragma warning disable IDE1006, SA1300 // State-dict names follow Hugging Face.
    private readonly ModuleList<BertLayer> layer;
#pragma warning restore IDE1006, SA1300

    /// <summary>Creates the stack.</summary>
    public BertEncoder(IEnumerable<BertLayerOptions> layers, Device? device = null)
        : base(nameof(BertEncoder))
    {
        ArgumentNullException.ThrowIfNull(layers);
        layer = new ModuleList<BertLayer>(layers.Select(options => new BertLayer(options, device)).ToArray());
        RegisterComponents();
    }

    /// <summary>Number of layers.</summary>
    public int Count => layer.Count;

    /// <summary>Layer <paramref name="index"/>.</summary>
    public BertLayer this[int index] => layer[index];

    /// <inheritdoc/>
    public override Tensor forward(Tensor hidden) => forward(hidden, null);

    /// <summary>Runs every layer; see <see cref="BertLayer.forward(Tensor, Tensor?, Tensor?, Tensor?, long, AttentionCache?)"/>. The cache, if any, needs one entry per layer.</summary>
    public Tensor forward(Tensor hidden, Tensor? mask, Tensor? encoderHidden = null, Tensor? encoderMask = null, long queryLength = 0, KeyValueCache? cache = null)
    {
        ArgumentNullException.ThrowIfNull(hidden);
        if (cache is not null && cache.Count != layer.Count)
        {
            throw new ArgumentException($"The cache has {cache.Count} layers, the encoder {layer.Count}.", nameof(cache));
        }

        using var scope = NewDisposeScope();
        var x = hidden;
        for (var i = 0; i < layer.Count; i++)
        {
            x = layer[i].forward(x, mask, encoderHidden, encoderMask, queryLength, cache?[i]);
        }

        return scope.MoveToOuter(x);
    }

    /// <inheritdoc/>
    public IEnumerable<string> NoWeightDecayParameterNames() => NoWeightDecay.Compose(this);
}
