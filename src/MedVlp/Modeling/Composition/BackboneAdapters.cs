using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Modeling;

/// <summary>Adapters that present MedVlp's encoder modules through the backbone contracts.</summary>
public static class BackboneAdapters
{
    /// <summary>A <see cref="VolumeTransformer"/> as an image backbone: tokens after the final norm (CLS first), its
    /// attention pooling as the pooled vector.</summary>
    public static IImageBackbone From(VolumeTransformer transformer)
    {
        ArgumentNullException.ThrowIfNull(transformer);
        return new VolumeTransformerBackbone(transformer);
    }

    /// <summary>A <see cref="BertModel"/> as a text backbone, pooled by <paramref name="pooling"/>.</summary>
    public static ITextBackbone From(BertModel bert, TextPooling pooling)
    {
        ArgumentNullException.ThrowIfNull(bert);
        return new BertTextBackbone(bert, pooling);
    }

    private sealed class VolumeTransformerBackbone(VolumeTransformer transformer) : IImageBackbone
    {
        private readonly nn.Module<Tensor, Tensor> _pool = transformer.named_children().FirstOrDefault(c => c.name == "attn_pool").module as nn.Module<Tensor, Tensor>
            ?? throw new InvalidOperationException("VolumeTransformer has no attn_pool module.");

        public nn.Module TorchModule => transformer;

        public int Width => transformer.Config.Width;

        public IReadOnlyList<long> InputShape => [transformer.Config.InChannels, transformer.Config.InputSize, transformer.Config.InputSize, transformer.Config.InputSize];

        public BackboneOutput Encode(Tensor images)
        {
            using var scope = NewDisposeScope();
            var tokens = transformer.ForwardTokens(images);
            var pooled = _pool.forward(tokens);
            var mask = ones([tokens.shape[0], tokens.shape[1]], ScalarType.Int64, tokens.device);
            scope.MoveToOuter(tokens, pooled, mask);
            return new BackboneOutput(tokens, pooled, mask);
        }

        public Tensor EncodePooled(Tensor images) => transformer.forward(images);
    }

    private sealed class BertTextBackbone(BertModel bert, TextPooling pooling) : ITextBackbone
    {
        public nn.Module TorchModule => bert;

        public int Width => bert.Config.HiddenSize;

        public int VocabularySize => bert.Config.VocabSize;

        public int MaxTokens => bert.Config.MaxPositionEmbeddings;

        public BackboneOutput Encode(Tensor inputIds, Tensor attentionMask)
        {
            using var scope = NewDisposeScope();
            var hidden = bert.forward(inputIds, attentionMask);
            var pooled = Pool(hidden, attentionMask);
            var mask = attentionMask.to(ScalarType.Int64);
            scope.MoveToOuter(hidden, pooled, mask);
            return new BackboneOutput(hidden, pooled, mask);
        }

        public Tensor EncodePooled(Tensor inputIds, Tensor attentionMask)
        {
            using var scope = NewDisposeScope();
            return scope.MoveToOuter(Pool(bert.forward(inputIds, attentionMask), attentionMask));
        }

        private Tensor Pool(Tensor hidden, Tensor attentionMask)
        {
            if (pooling == TextPooling.Mean)
            {
                var mask = attentionMask.to(hidden.dtype).unsqueeze(-1);
                return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1);
            }

            return hidden[.., 0];
        }
    }
}
