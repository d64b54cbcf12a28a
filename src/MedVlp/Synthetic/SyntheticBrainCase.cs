using MedVlp.Volumes;

namespace MedVlp.Synthetic;

/// <summary>One synthetic subject: a T1-weighted-looking brain volume and its EHR-style report.</summary>
public sealed class SyntheticBrainCase
{
    internal SyntheticBrainCase(int index, Volume volume, SyntheticSubject subject, string report, string ehr)
    {
        Ehr = ehr;
        Index = index;
        Volume = volume;
        Subject = subject;
        Report = report;
    }

    /// <summary>The position of the case in its dataset (also fixes its random stream).</summary>
    public int Index { get; }

    /// <summary>The volume, in RAS+ orientation with its spacing and affine.</summary>
    public Volume Volume { get; }

    /// <summary>The hidden variables the volume and the report were drawn from.</summary>
    public SyntheticSubject Subject { get; }

    /// <summary>The diagnosis (shortcut for <c>Subject.Diagnosis</c>).</summary>
    public CognitiveDiagnosis Diagnosis => Subject.Diagnosis;

    /// <summary>The EHR-style report, ending with "The diagnosis is X.".</summary>
    public string Report { get; }

    /// <summary>MedBLIP-style EHR text: age, sex, education, MMSE (missing in about a quarter), APOE4, then "The diagnosis is X.".</summary>
    public string Ehr { get; }
}

/// <summary>The hidden variables of a synthetic subject.</summary>
/// <param name="Diagnosis">The diagnostic class.</param>
/// <param name="Age">Age in years.</param>
/// <param name="IsFemale">Sex.</param>
/// <param name="Mmse">Mini-mental state examination score (0 to 30), correlated with the class.</param>
/// <param name="Severity">Continuous disease severity (about 0 for CN, 1 for MCI, 2 for AD).</param>
/// <param name="VentricleScale">Size of the lateral ventricles relative to a healthy brain.</param>
/// <param name="CortexThicknessMm">Cortical ribbon thickness in millimetres.</param>
/// <param name="AtrophyGapMm">Width of the cerebrospinal-fluid space between skull and brain, in millimetres.</param>
/// <param name="LesionCount">Number of focal white-matter lesions (0 if none).</param>
public sealed record SyntheticSubject(
    CognitiveDiagnosis Diagnosis,
    int Age,
    bool IsFemale,
    int Mmse,
    double Severity,
    double VentricleScale,
    double CortexThicknessMm,
    double AtrophyGapMm,
    int LesionCount);
