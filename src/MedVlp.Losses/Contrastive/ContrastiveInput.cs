using static TorchSharp.torch;

namespace MedVlp.Losses;

/// <summary>
/// A batch of paired embeddings for a contrastive loss: row i of <see cref="ImageFeatures"/> belongs to row i of
/// <see cref="TextFeatures"/>.
/// </summary>
/// <param name="ImageFeatures">Image embeddings (B x D), L2-normalised by the model as in open_clip.</param>
/// <param name="TextFeatures">Text embeddings (B x D), L2-normalised by the model.</param>
/// <param name="LogitScale">The multiplier of the similarities (0-d), already exponentiated: <c>model.logit_scale.exp()</c>; a learnable parameter owned by the model.</param>
/// <param name="LogitBias">The additive logit bias (0-d) that <see cref="SigLipLoss"/> needs; unused by the softmax losses.</param>
public sealed record ContrastiveInput(Tensor ImageFeatures, Tensor TextFeatures, Tensor LogitScale, Tensor? LogitBias = null);

/// <summary>Two embeddings per sample, row i of one paired with row i of the other (for losses without a temperature).</summary>
/// <param name="ImageFeatures">Image embeddings (B x D).</param>
/// <param name="TextFeatures">Text embeddings (B x D).</param>
public sealed record EmbeddingPair(Tensor ImageFeatures, Tensor TextFeatures);

/// <summary>
/// Input of the BLIP-2 / MedBLIP image-text contrastive loss: several query-token embeddings per image against one text embedding.
/// </summary>
/// <param name="QueryFeatures">Image query embeddings (B x Q x D), L2-normalised (BLIP-2: normalize(vision_proj(Q-Former output))).</param>
/// <param name="TextFeatures">Text embeddings (B x D), L2-normalised (BLIP-2: normalize(text_proj(CLS))).</param>
/// <param name="LogitScale">The multiplier of the similarities (0-d): 1 / temperature.</param>
public sealed record QueryContrastiveInput(Tensor QueryFeatures, Tensor TextFeatures, Tensor LogitScale);
