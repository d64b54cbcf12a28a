using System.Runtime.CompilerServices;
using MedVlp.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Inference.Generation;

/// <summary>
/// The one decoding engine of MedVlp's language heads (<see cref="ILanguageHead"/>): greedy, seeded sampling
/// (temperature, top-k, top-p) and beam search with Hugging Face's length penalty, an optional repetition penalty, stop
/// sequences checked on the decoded text, a token limit, the end-of-sequence token, cancellation between tokens, and
/// streaming of the text as it is decoded. Every step runs under <c>no_grad</c> in its own dispose scope: only the
/// head's key/value cache lives between steps, and nothing survives a generation. Thread-safe (it holds no state).
/// </summary>
public sealed class TextGenerator
{
    /// <summary>Creates the engine.</summary>
    /// <param name="tokenizer">Decodes the generated tokens (null: token ids only, no stop sequences).</param>
    public TextGenerator(TextTokenizer? tokenizer = null)
    {
        Tokenizer = tokenizer;
    }

    /// <summary>The tokenizer that decodes the output, or null.</summary>
    public TextTokenizer? Tokenizer { get; }

    /// <summary>Generates from the head's prefix until end of sequence, a stop sequence or the token limit.</summary>
    /// <param name="head">The conditioned language head (not disposed here).</param>
    /// <param name="options">How to decode (default: greedy, 64 tokens).</param>
    /// <param name="cancellationToken">Checked before every token.</param>
    public GeneratedText Generate(ILanguageHead head, GenerationOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(head);
        options ??= new GenerationOptions();
        options.Validate();
        if (options.NumBeams > 1)
        {
            return BeamSearch(head, options, cancellationToken);
        }

        GeneratedText? result = null;
        foreach (var _ in Decode(head, options, r => result = r, cancellationToken))
        {
        }

        return result!;
    }

    /// <summary>
    /// Generates as <see cref="Generate"/> and yields the text as it is decoded (never a partial UTF-8 character, never
    /// text that a stop sequence may still claim); the pieces join to the final text. Each step runs on the thread pool.
    /// Beam search yields its best hypothesis once, at the end.
    /// </summary>
    /// <param name="head">The conditioned language head (not disposed here).</param>
    /// <param name="options">How to decode.</param>
    /// <param name="cancellationToken">Checked before every token.</param>
    public async IAsyncEnumerable<string> GenerateStreamingAsync(ILanguageHead head, GenerationOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(head);
        options ??= new GenerationOptions();
        options.Validate();
        if (options.NumBeams > 1)
        {
            var best = await Task.Run(() => BeamSearch(head, options, cancellationToken), cancellationToken).ConfigureAwait(false);
            if (best.Text.Length > 0)
            {
                yield return best.Text;
            }

            yield break;
        }

        using var steps = Decode(head, options, _ => { }, cancellationToken).GetEnumerator();
        while (await Task.Run(steps.MoveNext, cancellationToken).ConfigureAwait(false))
        {
            yield return steps.Current;
        }
    }

    private IEnumerable<string> Decode(ILanguageHead head, GenerationOptions options, Action<GeneratedText> finished, CancellationToken cancellationToken)
    {
        var text = new IncrementalDetokenizer(Tokenizer, options.StopSequences);
        var tokens = new List<int>();
        var limit = Math.Min(options.MaxNewTokens, head.MaxNewTokens ?? int.MaxValue);
        var reason = GenerationFinishReason.Length;
        using var generator = options.DoSample ? new Generator(unchecked((ulong)(options.Seed ?? Random.Shared.NextInt64())), Device(head)) : null;
        for (var step = 0; step < limit; step++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var next = NextToken(head, step == 0 ? null : tokens[^1], tokens, options, generator);
            if (head.EndOfSequenceTokenId == next)
            {
                reason = GenerationFinishReason.EndOfSequence;
                break;
            }

            tokens.Add(next);
            var piece = text.Add(next);
            if (piece.Length > 0)
            {
                yield return piece;
            }

            if (text.Stopped)
            {
                reason = GenerationFinishReason.StopSequence;
                break;
            }
        }

        var rest = text.Flush();
        if (rest.Length > 0)
        {
            yield return rest;
        }

        finished(new GeneratedText(text.Text, tokens, reason));
    }

    private static Device Device(ILanguageHead head) => head.Device;

    private static int NextToken(ILanguageHead head, int? last, List<int> previous, GenerationOptions options, Generator? generator)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var logits = last is null ? head.Prefill() : head.Advance(tensor(new long[] { last.Value }, device: Device(head)));
        var scores = Process(logits.to_type(ScalarType.Float32), [previous], options);
        if (!options.DoSample)
        {
            return (int)scores.argmax(-1).item<long>();
        }

        var probabilities = LogitsProcessing.Warp(scores, options).softmax(-1);
        return (int)multinomial(probabilities, 1, generator: generator).item<long>();
    }

    private static Tensor Process(Tensor scores, List<int>[] previous, GenerationOptions options)
    {
        if (options.RepetitionPenalty == 1.0 || previous[0].Count == 0)
        {
            return scores;
        }

        var ids = tensor(previous.SelectMany(p => p.Select(i => (long)i)).ToArray(), new long[] { previous.Length, previous[0].Count }, device: scores.device);
        return LogitsProcessing.RepetitionPenalty(scores, ids, options.RepetitionPenalty);
    }

    private GeneratedText BeamSearch(ILanguageHead head, GenerationOptions options, CancellationToken cancellationToken)
    {
        var beams = options.NumBeams;
        var limit = Math.Min(options.MaxNewTokens, head.MaxNewTokens ?? int.MaxValue);
        var eos = head.EndOfSequenceTokenId;
        var hypotheses = new BeamHypotheses(beams, options.LengthPenalty, options.EarlyStopping);
        var sequences = Enumerable.Range(0, beams).Select(_ => new List<int>()).ToArray();
        var scores = new float[beams];
        var done = false;
        for (var step = 0; step < limit && !done; step++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            long[] chosenTokens, chosenParents;
            using (var scope = NewDisposeScope())
            using (var noGrad = no_grad())
            {
                Tensor logits;
                if (step == 0)
                {
                    logits = head.Prefill();
                    head.SelectRows(zeros(beams, ScalarType.Int64, Device(head)));
                    logits = logits.expand(beams, logits.shape[^1]);
                }
                else
                {
                    logits = head.Advance(tensor(sequences.Select(s => (long)s[^1]).ToArray(), device: Device(head)));
                }

                var vocabulary = logits.shape[^1];
                var logProbabilities = Process(logits.to_type(ScalarType.Float32).log_softmax(-1), sequences, options);
                var beamScores = step == 0
                    ? tensor(Enumerable.Range(0, beams).Select(b => b == 0 ? 0f : -1e9f).ToArray(), device: logProbabilities.device)
                    : tensor(scores, device: logProbabilities.device);
                var candidates = (logProbabilities + beamScores.unsqueeze(1)).reshape(1, -1);
                var (values, indices) = candidates.topk(2 * beams, -1, largest: true, sorted: true);
                var candidateScores = values.squeeze(0).data<float>().ToArray();
                var flat = indices.squeeze(0).data<long>().ToArray();
                var nextScores = new List<float>(beams);
                var nextTokens = new List<long>(beams);
                var nextParents = new List<long>(beams);
                for (var rank = 0; rank < flat.Length && nextTokens.Count < beams; rank++)
                {
                    var token = flat[rank] % vocabulary;
                    var parent = flat[rank] / vocabulary;
                    if (token == eos)
                    {
                        if (rank < beams)
                        {
                            hypotheses.Add([.. sequences[parent]], candidateScores[rank], step + 1);
                        }

                        continue;
                    }

                    nextScores.Add(candidateScores[rank]);
                    nextTokens.Add(token);
                    nextParents.Add(parent);
                }

                done = hypotheses.IsDone(candidateScores.Max(), step + 1);
                scores = [.. nextScores];
                chosenTokens = [.. nextTokens];
                chosenParents = [.. nextParents];
                if (!done && step + 1 < limit)
                {
                    head.SelectRows(tensor(chosenParents, device: Device(head)));
                }
            }

            sequences = [.. chosenParents.Select((p, b) => new List<int>(sequences[p]) { (int)chosenTokens[b] })];
        }

        if (!done)
        {
            for (var b = 0; b < beams; b++)
            {
                hypotheses.Add([.. sequences[b]], scores[b], sequences[b].Count);
            }
        }

        var (bestScore, bestTokens) = hypotheses.Best();
        var reason = bestTokens.Length < limit ? GenerationFinishReason.EndOfSequence : GenerationFinishReason.Length;
        var text = new IncrementalDetokenizer(Tokenizer, options.StopSequences);
        var kept = new List<int>();
        foreach (var token in bestTokens)
        {
            kept.Add(token);
            text.Add(token);
            if (text.Stopped)
            {
                reason = GenerationFinishReason.StopSequence;
                break;
            }
        }

        return new GeneratedText(text.Text, kept, reason, bestScore);
    }

    /// <summary>Hugging Face's <c>BeamHypotheses</c>: the n best finished hypotheses, scored sum / length^penalty.</summary>
    private sealed class BeamHypotheses(int beams, double lengthPenalty, bool earlyStopping)
    {
        private readonly List<(double Score, int[] Tokens)> _items = [];
        private double _worst = 1e9;

        public void Add(int[] tokens, double sumLogProbabilities, int generatedLength)
        {
            var score = sumLogProbabilities / Math.Pow(generatedLength, lengthPenalty);
            if (_items.Count < beams || score > _worst)
            {
                _items.Add((score, tokens));
                if (_items.Count > beams)
                {
                    var sorted = _items.Select((h, i) => (h.Score, i)).Order().ToArray();
                    _items.RemoveAt(sorted[0].i);
                    _worst = sorted[1].Score;
                }
                else
                {
                    _worst = Math.Min(score, _worst);
                }
            }
        }

        public bool IsDone(double bestSumLogProbabilities, int generatedLength)
        {
            if (_items.Count < beams)
            {
                return false;
            }

            return earlyStopping || _worst >= bestSumLogProbabilities / Math.Pow(generatedLength, lengthPenalty);
        }

        public (double Score, int[] Tokens) Best() => _items.Count == 0 ? (double.NegativeInfinity, []) : _items.MaxBy(h => h.Score);
    }
}
