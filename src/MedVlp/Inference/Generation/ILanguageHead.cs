using static TorchSharp.torch;

namespace MedVlp.Inference.Generation;

/// <summary>
/// The contract between a model with a language head and <see cref="TextGenerator"/>: a decoder conditioned on one
/// prefix (a prompt, image tokens, or both) that gives next-token logits and keeps its key/value cache between calls.
/// The generator calls <see cref="Prefill"/> once, then <see cref="Advance"/> with one token per row; beam search widens
/// and reorders the rows with <see cref="SelectRows"/>. Implementations run every call in a dispose scope and keep their
/// cache outside any scope until disposed.
/// </summary>
public interface ILanguageHead : IDisposable
{
    /// <summary>Where the head's tensors live (token ids are put there).</summary>
    Device Device { get; }

    /// <summary>The number of logits per token.</summary>
    int VocabularySize { get; }

    /// <summary>The token that ends a sequence, or null when only the length ends it.</summary>
    long? EndOfSequenceTokenId { get; }

    /// <summary>How many tokens can still follow the prefix (the model's position limit), or null when unbounded.</summary>
    int? MaxNewTokens { get; }

    /// <summary>Runs the prefix and returns the logits of the first new token (1 x vocabulary), in the caller's dispose scope.</summary>
    Tensor Prefill();

    /// <summary>Appends one token to each row (a 1-d int64 tensor of the rows' count) and returns the next logits (rows x vocabulary).</summary>
    Tensor Advance(Tensor tokens);

    /// <summary>Row i continues what row <c>rows[i]</c> held (1-d int64; repeats widen, as from one prompt to several beams).</summary>
    void SelectRows(Tensor rows);
}
