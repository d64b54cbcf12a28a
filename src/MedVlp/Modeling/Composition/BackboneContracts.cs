using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Modeling;

// Vocabulary used across MedVlp: "image" is the vision input of any dimensionality (a 2D slice, projection or X-ray,
// or a 3D volume) and is the word of the losses and the contracts below; "volume" names what is 3D only (the
// MedVlp.Volumes.Volume type, VolumeTransformer, VolumeEncoder which reads Volume objects). "Logit scale" is always
// the multiplier of the similarities (exp of the learned parameter); the learned parameter itself is its log.

/// <summary>
/// What a backbone returns for a batch: per-token states, one pooled vector per example, and which tokens are real.
/// The caller owns the tensors (dispose them, or create them inside a dispose scope).
/// </summary>
/// <param name="Tokens">Token states (B x T x width).</param>
/// <param name="Pooled">One vector per example (B x width): CLS, mean or attention pooling, as the backbone defines.</param>
/// <param name="TokenMask">1 for a real token, 0 for padding (B x T, int64); all ones for images.</param>
public sealed record BackboneOutput(Tensor Tokens, Tensor Pooled, Tensor TokenMask) : IDisposable
{
    /// <summary>Disposes the three tensors.</summary>
    public void Dispose()
    {
        Tokens.Dispose();
        Pooled.Dispose();
        TokenMask.Dispose();
    }
}

/// <summary>
/// An image backbone (2D or 3D): a ViT, a ResNet, an EVA ViT fed with 3D patches. Implemented by modules, or by an
/// adapter around a module (<see cref="BackboneAdapters"/>). Freeze it through its <see cref="CompositeModel"/>.
/// </summary>
public interface IImageBackbone
{
    /// <summary>The TorchSharp module holding the weights (the backbone itself, or the module an adapter wraps).</summary>
    nn.Module TorchModule { get; }

    /// <summary>Width of the token states and of the pooled vector.</summary>
    int Width { get; }

    /// <summary>The shape of one input example: channels then spatial sizes (C x D x H x W for volumes, C x H x W for images).</summary>
    IReadOnlyList<long> InputShape { get; }

    /// <summary>Tokens, pooled vector and token mask for a batch of images (B x <see cref="InputShape"/>).</summary>
    BackboneOutput Encode(Tensor images);

    /// <summary>Only the pooled vector (B x width); backbones may compute it without materialising what else
    /// <see cref="Encode"/> returns.</summary>
    Tensor EncodePooled(Tensor images)
    {
        using var scope = NewDisposeScope();
        var output = Encode(images);
        return scope.MoveToOuter(output.Pooled);
    }
}

/// <summary>A text backbone (BERT, CXR-BERT, a Q-Former's text side): token ids and attention mask in, states out.</summary>
public interface ITextBackbone
{
    /// <summary>The TorchSharp module holding the weights.</summary>
    nn.Module TorchModule { get; }

    /// <summary>Width of the token states and of the pooled vector.</summary>
    int Width { get; }

    /// <summary>Rows of the word embedding: token ids must be smaller.</summary>
    int VocabularySize { get; }

    /// <summary>The longest sequence the backbone accepts (its learned positions).</summary>
    int MaxTokens { get; }

    /// <summary>Tokens, pooled vector and the attention mask for token ids (B x T, int64) and mask (B x T, 1 = token).</summary>
    BackboneOutput Encode(Tensor inputIds, Tensor attentionMask);

    /// <summary>Only the pooled vector (B x width).</summary>
    Tensor EncodePooled(Tensor inputIds, Tensor attentionMask)
    {
        using var scope = NewDisposeScope();
        var output = Encode(inputIds, attentionMask);
        return scope.MoveToOuter(output.Pooled);
    }
}

/// <summary>What a causal language model returns.</summary>
/// <param name="Logits">Next-token logits (B x T x vocabulary).</param>
/// <param name="Loss">Mean cross-entropy of the shifted labels (positions labelled -100 ignored), when labels were given.</param>
public sealed record LanguageModelOutput(Tensor Logits, Tensor? Loss) : IDisposable
{
    /// <summary>Disposes the tensors.</summary>
    public void Dispose()
    {
        Logits.Dispose();
        Loss?.Dispose();
    }
}

/// <summary>
/// A decoder-only language model driven by embeddings, as MedBLIP drives a frozen OPT/BioMedLM with Q-Former outputs
/// prepended to the prompt: <c>inputs_embeds</c> (+ mask, labels) in, logits and loss out. Decoding is not part of this
/// contract: every language head decodes through the one engine, <c>MedVlp.Inference.Generation.TextGenerator</c>, over an
/// <c>ILanguageHead</c>.
/// Gradients flow through it to <c>inputs_embeds</c> even when it is frozen.
/// </summary>
public interface ICausalLanguageModel
{
    /// <summary>The TorchSharp module holding the weights.</summary>
    nn.Module TorchModule { get; }

    /// <summary>Width of the input embeddings.</summary>
    int Width { get; }

    /// <summary>Size of the output vocabulary.</summary>
    int VocabularySize { get; }

    /// <summary>The model's token embedding of ids (B x T) -> (B x T x width), to concatenate behind soft prompts.</summary>
    Tensor EmbedTokens(Tensor inputIds);

    /// <summary>Logits for <paramref name="inputsEmbeds"/> (B x T x width) under <paramref name="attentionMask"/> (B x T);
    /// with <paramref name="labels"/> (B x T, -100 = ignore) also the shifted next-token loss.</summary>
    LanguageModelOutput Forward(Tensor inputsEmbeds, Tensor attentionMask, Tensor? labels = null);
}

/// <summary>A model that takes preprocessed volumes of one shape (channels, k, j, i), whether or not it is a dual
/// encoder: what a model package checks its preprocessing against before training.</summary>
public interface IVolumeInputModel
{
    /// <summary>The shape of one preprocessed example: channels, then spatial sizes (C x D x H x W for volumes, C x H x W
    /// for 2D images).</summary>
    IReadOnlyList<long> ImageInputShape { get; }
}

/// <summary>
/// A model that embeds images (2D or 3D) into vectors: what <see cref="MedVlp.Inference.VolumeEncoder"/>, the linear probe
/// and retrieval need. Dual encoders (<see cref="IDualEncoder"/>) are image encoders; image-only self-supervised models
/// (LVM-Med) are too.
/// </summary>
public interface IImageEncoder : IVolumeInputModel
{
    /// <summary>Width of the image embeddings.</summary>
    int EmbeddingDim { get; }

    /// <summary>L2-normalised image embeddings (B x E) of preprocessed images (B x <see cref="IVolumeInputModel.ImageInputShape"/>).</summary>
    Tensor EncodeImages(Tensor images);
}

/// <summary>
/// A model whose image backbone's own pooled feature, before any projection into a shared space, is what its paper
/// evaluates downstream (M-FLAG keeps its ResNet-50 for downstream tasks): what <c>medvlp probe --features backbone</c> and
/// <see cref="Inference.VolumeEncoder.EmbedBackboneFeatures"/> use.
/// </summary>
public interface IImageFeatureEncoder : IVolumeInputModel
{
    /// <summary>Width of the backbone features.</summary>
    int FeatureDim { get; }

    /// <summary>L2-normalised pooled backbone features (B x F) of preprocessed images (B x <see cref="IVolumeInputModel.ImageInputShape"/>).</summary>
    Tensor EncodeImageFeatures(Tensor images);
}

/// <summary>
/// A model that embeds images and texts into one space (CLIP-style): what <see cref="Inference.VolumeEncoder"/>,
/// <see cref="Inference.TextEncoder"/> and zero-shot classification need from an architecture.
/// </summary>
public interface IDualEncoder : IImageEncoder
{
    /// <summary>The longest tokenized text, special tokens included.</summary>
    int MaxTextTokens { get; }

    /// <summary>L2-normalised text embeddings (B x E) of token ids and attention mask (B x T).</summary>
    Tensor EncodeTexts(Tensor inputIds, Tensor attentionMask);

    /// <summary>The logit scale (0-d): the multiplier of cosine similarities, exp of the learned parameter, clamped.</summary>
    Tensor LogitScale();
}

/// <summary>
/// A dual encoder whose zero-shot rule is more than the cosine of two embeddings (PRIOR adds a local score between the
/// image's tokens and the prompt): <see cref="Inference.ZeroShotClassifier"/> scores images with it.
/// </summary>
public interface IZeroShotScoringModel : IDualEncoder
{
    /// <summary>Encodes one class's prompts, tokenized and padded to one length (P x T ids and mask), into what
    /// <see cref="ZeroShotScores"/> compares images with (P x <see cref="IImageEncoder.EmbeddingDim"/>).</summary>
    Tensor EncodePrompts(Tensor promptIds, Tensor promptMask);

    /// <summary>Class scores (B x K, larger is more likely, non-negative) of preprocessed images
    /// (B x <see cref="IVolumeInputModel.ImageInputShape"/>) against K classes' encoded prompts (<see cref="EncodePrompts"/>).</summary>
    Tensor ZeroShotScores(Tensor images, IReadOnlyList<Tensor> classPrompts);
}
