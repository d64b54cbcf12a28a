namespace MedVlp.Synthetic;

/// <summary>The three diagnostic classes of MedBLIP's computer-aided diagnosis task.</summary>
public enum CognitiveDiagnosis
{
    /// <summary>Cognitively normal (CN): "Not demented".</summary>
    CognitivelyNormal = 0,

    /// <summary>Mild cognitive impairment (MCI).</summary>
    MildCognitiveImpairment = 1,

    /// <summary>Alzheimer's disease dementia (AD): "Dementia".</summary>
    Dementia = 2,
}

/// <summary>Label names and short codes of <see cref="CognitiveDiagnosis"/>, as MedBLIP writes them.</summary>
public static class CognitiveDiagnosisNames
{
    /// <summary>All three classes in order of severity.</summary>
    public static IReadOnlyList<CognitiveDiagnosis> All { get; } =
        [CognitiveDiagnosis.CognitivelyNormal, CognitiveDiagnosis.MildCognitiveImpairment, CognitiveDiagnosis.Dementia];

    /// <summary>The label name MedBLIP's reports end with ("The diagnosis is X.").</summary>
    public static string LabelName(this CognitiveDiagnosis diagnosis) => diagnosis switch
    {
        CognitiveDiagnosis.CognitivelyNormal => "Not demented",
        CognitiveDiagnosis.MildCognitiveImpairment => "mild cognitive impairment (MCI)",
        CognitiveDiagnosis.Dementia => "Dementia",
        _ => throw new ArgumentOutOfRangeException(nameof(diagnosis), diagnosis, "Unknown diagnosis."),
    };

    /// <summary>The usual short code: <c>CN</c>, <c>MCI</c> or <c>AD</c>.</summary>
    public static string Code(this CognitiveDiagnosis diagnosis) => diagnosis switch
    {
        CognitiveDiagnosis.CognitivelyNormal => "CN",
        CognitiveDiagnosis.MildCognitiveImpairment => "MCI",
        CognitiveDiagnosis.Dementia => "AD",
        _ => throw new ArgumentOutOfRangeException(nameof(diagnosis), diagnosis, "Unknown diagnosis."),
    };

    /// <summary>Parses a short code (<c>CN</c>, <c>MCI</c>, <c>AD</c>, case-insensitive).</summary>
    public static CognitiveDiagnosis FromCode(string code) => code.ToUpperInvariant() switch
    {
        "CN" => CognitiveDiagnosis.CognitivelyNormal,
        "MCI" => CognitiveDiagnosis.MildCognitiveImpairment,
        "AD" => CognitiveDiagnosis.Dementia,
        _ => throw new ArgumentException($"Unknown diagnosis code '{code}'; expected CN, MCI or AD.", nameof(code)),
    };
}
