using MedVlp.Inference.Generation;
using static TorchSharp.torch;

namespace MedVlp.Tests.Generation;

/// <summary>
/// A language head for engine tests: its logits make the scripted token the arg-max at each step (or, with
/// <see cref="FixedLogits"/>, every step gives the same logits vector). Checks that the engine feeds back what it chose.
/// </summary>
internal sealed class ScriptedHead(int vocabulary, IReadOnlyList<int> script, long? endOfSequence = null) : ILanguageHead
{
    private int _step;

    public float[]? FixedLogits { get; init; }

    public List<long> Received { get; } = [];

    public Device Device => CPU;

    public int VocabularySize => vocabulary;

    public long? EndOfSequenceTokenId => endOfSequence;

    public int? MaxNewTokens => null;

    public Tensor Prefill() => Next(1);

    public Tensor Advance(Tensor tokens)
    {
        Received.AddRange(tokens.data<long>().ToArray());
        return Next(tokens.shape[0]);
    }

    public void SelectRows(Tensor rows)
    {
    }

    public void Dispose()
    {
    }

    private Tensor Next(long rows)
    {
        if (FixedLogits is not null)
        {
            return tensor(FixedLogits).unsqueeze(0).expand(rows, -1).contiguous();
        }

        var logits = zeros(rows, vocabulary);
        logits[.., script[Math.Min(_step, script.Count - 1)]] = 10f;
        _step++;
        return logits;
    }
}
