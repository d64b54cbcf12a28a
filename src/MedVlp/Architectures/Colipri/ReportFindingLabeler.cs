using System.Text.RegularExpressions;

namespace MedVlp.Architectures.Colipri;

/// <summary>A finding the labeler looks for: its name, the words that mention it, and its two opposite sentences.</summary>
/// <param name="Name">The finding's key (for example <c>pleural_effusion</c>).</param>
/// <param name="Keywords">Lower-case words or phrases whose presence in a sentence mentions the finding.</param>
/// <param name="Affirmative">A sentence stating the finding ("There is pleural effusion.").</param>
/// <param name="Negated">Its negation ("There is no pleural effusion.").</param>
public sealed record FindingDefinition(string Name, IReadOnlyList<string> Keywords, string Affirmative, string Negated);

/// <summary>
/// Turns free-text reports into per-finding labels the way rule-based labelers (NegEx, CheXpert) do: a sentence that
/// mentions a finding's keyword is negative when a negation cue precedes the keyword in that sentence ("no", "without",
/// "free of", "negative for", "normal"), positive otherwise; a finding no sentence mentions is unknown (-1). The labels
/// supervise <see cref="MedVlp.Losses.OppositeSentenceLoss"/> from reports alone.
/// </summary>
public sealed partial class ReportFindingLabeler
{
    private readonly FindingDefinition[] findings;

    /// <summary>Creates a labeler for the given findings.</summary>
    public ReportFindingLabeler(IEnumerable<FindingDefinition> findings)
    {
        ArgumentNullException.ThrowIfNull(findings);
        this.findings = [.. findings];
        if (this.findings.Length == 0 || this.findings.Any(f => f.Keywords.Count == 0))
        {
            throw new ArgumentException("A labeler needs at least one finding, each with at least one keyword.", nameof(findings));
        }
    }

    /// <summary>The findings, in label order.</summary>
    public IReadOnlyList<FindingDefinition> Findings => findings;

    /// <summary>Labels one report: 1 present, 0 negated, -1 not mentioned, per finding.</summary>
    public long[] Label(string report)
    {
        ArgumentNullException.ThrowIfNull(report);
        var labels = Enumerable.Repeat(-1L, findings.Length).ToArray();
        foreach (var sentence in SentenceSplit().Split(report.ToLowerInvariant()))
        {
            for (var f = 0; f < findings.Length; f++)
            {
                foreach (var keyword in findings[f].Keywords)
                {
                    var at = sentence.IndexOf(keyword, StringComparison.Ordinal);
                    if (at < 0)
                    {
                        continue;
                    }

                    var negated = NegationCue().IsMatch(sentence[..at]) || sentence.Contains(keyword + " is normal", StringComparison.Ordinal) ||
                                  sentence.Contains("size is normal", StringComparison.Ordinal);
                    // A positive mention wins over a negated one elsewhere in the report.
                    labels[f] = negated ? Math.Max(labels[f], 0) : 1;
                }
            }
        }

        return labels;
    }

    [GeneratedRegex(@"(?<=[.!?;:])\s+")]
    private static partial Regex SentenceSplit();

    [GeneratedRegex(@"\b(no|not|without|free of|negative for|absence of|normal)\b")]
    private static partial Regex NegationCue();
}
