using MedVlp.Text;

namespace MedVlp.Inference.Generation;

/// <summary>
/// Turns generated tokens into text piece by piece: decodes all tokens so far and hands out only what is stable, holding
/// back an incomplete UTF-8 character (a GPT-2 byte-level token may carry part of one; its decode ends in U+FFFD) and any
/// tail that could still become a stop sequence. Finds the first stop sequence and cuts the text before it.
/// </summary>
internal sealed class IncrementalDetokenizer
{
    private readonly TextTokenizer? _tokenizer;
    private readonly IReadOnlyList<string> _stops;
    private readonly int _longestStop;
    private readonly List<int> _ids = [];
    private int _emitted;

    public IncrementalDetokenizer(TextTokenizer? tokenizer, IReadOnlyList<string> stops)
    {
        if (tokenizer is null && stops.Count > 0)
        {
            throw new ArgumentException("Stop sequences are checked on decoded text: give the generator a tokenizer.", nameof(stops));
        }

        _tokenizer = tokenizer;
        _stops = stops;
        _longestStop = stops.Count == 0 ? 0 : stops.Max(s => s.Length);
    }

    /// <summary>The text so far (cut before a stop sequence once one appeared).</summary>
    public string Text { get; private set; } = "";

    /// <summary>A stop sequence appeared.</summary>
    public bool Stopped { get; private set; }

    /// <summary>Adds a token; returns the new stable text (possibly empty).</summary>
    public string Add(int token)
    {
        _ids.Add(token);
        if (_tokenizer is null)
        {
            return "";
        }

        var full = _tokenizer.Decode(_ids);
        var stopAt = -1;
        foreach (var stop in _stops)
        {
            var at = full.IndexOf(stop, StringComparison.Ordinal);
            if (at >= 0 && (stopAt < 0 || at < stopAt))
            {
                stopAt = at;
            }
        }

        if (stopAt >= 0)
        {
            Stopped = true;
            Text = full[..stopAt];
            return Flush();
        }

        Text = full;
        var safe = full.Length;
        while (safe > 0 && full[safe - 1] == '\uFFFD')
        {
            safe--;
        }

        for (var k = Math.Min(_longestStop - 1, safe); k > 0; k--)
        {
            var tail = full.Substring(safe - k, k);
            if (_stops.Any(s => s.StartsWith(tail, StringComparison.Ordinal)))
            {
                safe -= k;
                break;
            }
        }

        // Never split a UTF-16 surrogate pair either.
        if (safe > 0 && safe < full.Length && char.IsHighSurrogate(full[safe - 1]))
        {
            safe--;
        }

        if (safe <= _emitted)
        {
            return "";
        }

        var piece = full[_emitted..safe];
        _emitted = safe;
        return piece;
    }

    /// <summary>The text not handed out yet (at the end of generation).</summary>
    public string Flush()
    {
        if (Text.Length <= _emitted)
        {
            _emitted = Text.Length;
            return "";
        }

        var piece = Text[_emitted..];
        _emitted = Text.Length;
        return piece;
    }
}
