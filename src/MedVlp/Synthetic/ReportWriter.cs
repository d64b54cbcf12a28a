using System.Globalization;
using System.Text;

namespace MedVlp.Synthetic;

/// <summary>Writes MedBLIP-style EHR text for a synthetic subject: demographics, MMSE, history, findings, diagnosis.</summary>
internal static class ReportWriter
{
    private static readonly string[] Demographics =
    [
        "{0}-year-old {1} patient.",
        "The subject is a {0} year old {2}.",
        "Age {0}, {1}.",
        "Patient is a {2} aged {0}.",
    ];

    private static readonly string[] MmseSentences =
    [
        "MMSE score is {0} of 30.",
        "Mini-mental state examination: {0}/30.",
        "MMSE {0}.",
        "The MMSE score was {0}.",
    ];

    private static readonly string[][] History =
    [
        ["No cognitive complaints.", "Independent in daily activities.", "No memory complaints reported."],
        ["Mild memory complaints reported by the family.", "Subjective forgetfulness, daily activities preserved.", "Reports occasional word-finding difficulty."],
        ["Progressive memory loss over several years.", "Needs help with daily activities.", "Family reports disorientation and memory loss."],
    ];

    private static readonly string[][] Ventricles =
    [
        ["The ventricles are normal in size.", "No ventricular enlargement.", "Ventricular system within normal limits."],
        ["Mild enlargement of the lateral ventricles.", "The ventricles are mildly enlarged.", "Slight ventricular dilatation."],
        ["Marked enlargement of the lateral ventricles.", "The ventricles are severely enlarged.", "Prominent ventricular dilatation."],
    ];

    private static readonly string[][] Cortex =
    [
        ["No cortical atrophy.", "Cortical thickness is preserved.", "Sulci are normal for age."],
        ["Mild cortical thinning.", "Mild global atrophy with slightly widened sulci.", "Mild generalized volume loss."],
        ["Severe cortical atrophy with widened sulci.", "Marked global brain atrophy.", "Pronounced cortical thinning and volume loss."],
    ];

    private static readonly string[] LesionSentences =
    [
        "A few small white matter lesions are seen.",
        "Scattered focal white matter lesions.",
        "Several small lesions in the deep white matter.",
    ];

    private static readonly string[] NoLesionSentences =
    [
        "No focal lesions.",
        "No white matter lesions.",
    ];

    public static string Write(SyntheticSubject s, Random r)
    {
        var c = CultureInfo.InvariantCulture;
        var sex = s.IsFemale ? "female" : "male";
        var person = s.IsFemale ? "woman" : "man";
        // Findings follow the anatomy actually drawn (severity), which nearly always matches the class.
        var grade = s.Severity < 0.5 ? 0 : s.Severity < 1.5 ? 1 : 2;
        var findings = new List<string>
        {
            Pick(Ventricles[grade], r),
            Pick(Cortex[grade], r),
        };
        if (s.LesionCount > 0)
        {
            findings.Add(Pick(LesionSentences, r));
        }
        else if (r.NextDouble() < 0.5)
        {
            findings.Add(Pick(NoLesionSentences, r));
        }

        if (r.NextDouble() < 0.5)
        {
            (findings[0], findings[1]) = (findings[1], findings[0]);
        }

        var text = new StringBuilder();
        text.Append(string.Format(c, Pick(Demographics, r), s.Age, sex, person)).Append(' ');
        text.Append(string.Format(c, Pick(MmseSentences, r), s.Mmse)).Append(' ');
        if (r.NextDouble() < 0.7)
        {
            text.Append(Pick(History[(int)s.Diagnosis], r)).Append(' ');
        }

        foreach (var f in findings)
        {
            text.Append(f).Append(' ');
        }

        text.Append("The diagnosis is ").Append(s.Diagnosis.LabelName()).Append('.');
        return text.ToString();
    }

    private static string Pick(string[] options, Random r) => options[r.Next(options.Length)];
}
