namespace MedVlp.Synthetic;

/// <summary>The findings a <see cref="SyntheticChestDataset"/> phantom can show (a subset of CT-RATE's 18 abnormality labels).</summary>
public enum ChestFinding
{
    /// <summary>One or more solid lung nodules (3-8 mm radius spheres of soft-tissue density in a lung).</summary>
    LungNodule,

    /// <summary>Pleural effusion: fluid (about 10 HU) in the dependent, posterior part of one or both pleural spaces.</summary>
    PleuralEffusion,

    /// <summary>Cardiomegaly: a heart about 1.3 to 1.45 times the normal size.</summary>
    Cardiomegaly,

    /// <summary>Emphysema: lower lung density (about -930 HU) with bullae (near-air spheres) in the upper lobes.</summary>
    Emphysema,

    /// <summary>Consolidation: an airless region of soft-tissue density inside a lobe.</summary>
    Consolidation,
}

/// <summary>Names and zero-shot prompts of <see cref="ChestFinding"/>.</summary>
public static class ChestFindingExtensions
{
    /// <summary>Every finding, in enum order.</summary>
    public static IReadOnlyList<ChestFinding> All { get; } = Enum.GetValues<ChestFinding>();

    /// <summary>A short lower-case key for files and manifests (<c>lung_nodule</c>, <c>pleural_effusion</c>, ...).</summary>
    public static string Key(this ChestFinding finding) => finding switch
    {
        ChestFinding.LungNodule => "lung_nodule",
        ChestFinding.PleuralEffusion => "pleural_effusion",
        ChestFinding.Cardiomegaly => "cardiomegaly",
        ChestFinding.Emphysema => "emphysema",
        ChestFinding.Consolidation => "consolidation",
        _ => throw new ArgumentOutOfRangeException(nameof(finding), finding, null),
    };

    /// <summary>The positive zero-shot prompt, COLIPRI style ("Lung nodules").</summary>
    public static string PositivePrompt(this ChestFinding finding) => finding switch
    {
        ChestFinding.LungNodule => "Lung nodules",
        ChestFinding.PleuralEffusion => "Pleural effusion",
        ChestFinding.Cardiomegaly => "Cardiomegaly",
        ChestFinding.Emphysema => "Emphysema",
        ChestFinding.Consolidation => "Consolidation",
        _ => throw new ArgumentOutOfRangeException(nameof(finding), finding, null),
    };

    /// <summary>The negative zero-shot prompt ("No lung nodules").</summary>
    public static string NegativePrompt(this ChestFinding finding) => finding switch
    {
        ChestFinding.LungNodule => "No lung nodules",
        ChestFinding.PleuralEffusion => "No pleural effusion",
        ChestFinding.Cardiomegaly => "No cardiomegaly",
        ChestFinding.Emphysema => "No emphysema",
        ChestFinding.Consolidation => "No consolidation",
        _ => throw new ArgumentOutOfRangeException(nameof(finding), finding, null),
    };
}
