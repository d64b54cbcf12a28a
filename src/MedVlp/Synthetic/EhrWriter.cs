using System.Globalization;
using System.Text;
using MathNet.Numerics.Distributions;

namespace MedVlp.Synthetic;

/// <summary>
/// Writes MedBLIP-style EHR text (the tabular ADNI / OASIS fields MedBLIP turns into a sentence list): age, sex, years of
/// education, MMSE, APOE4 status, then "The diagnosis is X.". Clinical fields only, no imaging findings, so that the
/// volume carries what the text does not. About a quarter of the records lack the MMSE (as real EHR exports do), which
/// leaves the diagnosis to the image there.
/// </summary>
internal static class EhrWriter
{
    /// <summary>The probability that a record has no MMSE.</summary>
    public const double MissingMmseProbability = 0.25;

    public static string Write(SyntheticSubject s, Random r)
    {
        var c = CultureInfo.InvariantCulture;
        var d = (int)s.Diagnosis;
        var education = (int)Math.Round(Math.Clamp(Normal.Sample(r, 16 - (0.6 * d), 2.6), 8, 22));
        var apoe4 = r.NextDouble() < d switch { 0 => 0.25, 1 => 0.45, _ => 0.6 };
        var text = new StringBuilder();
        text.Append(string.Format(c, "Age: {0}. Sex: {1}. Education: {2} years. ", s.Age, s.IsFemale ? "female" : "male", education));
        if (r.NextDouble() >= MissingMmseProbability)
        {
            text.Append(string.Format(c, "MMSE: {0}. ", s.Mmse));
        }

        text.Append(apoe4 ? "APOE4: carrier. " : "APOE4: non-carrier. ");
        text.Append("The diagnosis is ").Append(s.Diagnosis.LabelName()).Append('.');
        return text.ToString();
    }
}
