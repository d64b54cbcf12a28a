using System.Globalization;
using System.Text;

namespace MedVlp.Synthetic;

/// <summary>Writes a radiology-style chest CT report: every present finding described, some absent ones negated.</summary>
internal static class ChestReportWriter
{
    public static string Write(IReadOnlyDictionary<ChestFinding, bool> findings, IReadOnlyList<ChestLesion> lesions, double negationProbability, Random random)
    {
        var sentences = new List<string>();
        foreach (var finding in ChestFindingExtensions.All)
        {
            if (findings[finding])
            {
                sentences.Add(Describe(finding, lesions.Where(l => l.Finding == finding).ToList(), random));
            }
            else if (random.NextDouble() < negationProbability)
            {
                sentences.Add(Pick(random, Negations(finding)));
            }
        }

        // Normal structures, in random order with the findings.
        string[] normal =
        [
            "The trachea and main bronchi are patent.",
            "No mediastinal or hilar lymphadenopathy.",
            "The visualized osseous structures show no acute abnormality.",
            "The thoracic aorta is normal in caliber.",
        ];
        foreach (var s in normal)
        {
            if (random.NextDouble() < 0.5)
            {
                sentences.Insert(random.Next(sentences.Count + 1), s);
            }
        }

        var present = ChestFindingExtensions.All.Where(f => findings[f]).ToList();
        var impression = present.Count == 0
            ? Pick(random, ["No acute cardiopulmonary abnormality.", "Normal chest CT.", "No significant abnormality of the chest."])
            : string.Join(" ", present.Select(f => Impression(f)));
        var text = new StringBuilder("FINDINGS: ");
        text.AppendJoin(' ', sentences.Count == 0 ? ["The lungs are clear."] : sentences);
        text.Append(" IMPRESSION: ").Append(impression);
        return text.ToString();
    }

    private static string Describe(ChestFinding finding, List<ChestLesion> lesions, Random random)
    {
        switch (finding)
        {
            case ChestFinding.LungNodule:
                var largest = lesions.MaxBy(l => l.RadiusMm)!;
                var size = ((int)Math.Round(2 * largest.RadiusMm)).ToString(CultureInfo.InvariantCulture);
                return lesions.Count == 1
                    ? Pick(random, [$"A {size} mm solid nodule is seen in the {Lobe(largest)}.", $"There is a {size} mm pulmonary nodule in the {Lobe(largest)}."])
                    : $"Multiple pulmonary nodules are present, the largest measuring {size} mm in the {Lobe(largest)}.";
            case ChestFinding.PleuralEffusion:
                var side = lesions.Count == 2 ? "bilateral" : lesions[0].X > 0 ? "right" : "left";
                return Pick(random, [$"There is a {side} pleural effusion.", $"{Capital(side)} pleural effusion is present.", $"A {side} pleural effusion layers posteriorly."]);
            case ChestFinding.Cardiomegaly:
                return Pick(random, ["The heart is enlarged.", "Cardiomegaly is present.", "The cardiac silhouette is enlarged."]);
            case ChestFinding.Emphysema:
                return Pick(random, ["There is centrilobular and bullous emphysema in both upper lobes.", "Emphysematous changes are seen with bullae in the upper lobes."]);
            case ChestFinding.Consolidation:
                var where = Lobe(lesions[0]);
                return Pick(random, [$"There is a consolidation in the {where}.", $"Airspace consolidation is seen in the {where}, suspicious for pneumonia."]);
            default:
                throw new ArgumentOutOfRangeException(nameof(finding), finding, null);
        }
    }

    private static string[] Negations(ChestFinding finding) => finding switch
    {
        ChestFinding.LungNodule => ["No pulmonary nodules.", "No suspicious lung nodules are identified."],
        ChestFinding.PleuralEffusion => ["No pleural effusion.", "There is no pleural effusion."],
        ChestFinding.Cardiomegaly => ["Heart size is normal.", "No cardiomegaly."],
        ChestFinding.Emphysema => ["No emphysema.", "There is no emphysema."],
        ChestFinding.Consolidation => ["No focal consolidation.", "There is no consolidation."],
        _ => throw new ArgumentOutOfRangeException(nameof(finding), finding, null),
    };

    private static string Impression(ChestFinding finding) => finding switch
    {
        ChestFinding.LungNodule => "Pulmonary nodule(s); follow-up recommended.",
        ChestFinding.PleuralEffusion => "Pleural effusion.",
        ChestFinding.Cardiomegaly => "Cardiomegaly.",
        ChestFinding.Emphysema => "Emphysema.",
        ChestFinding.Consolidation => "Consolidation, likely pneumonia.",
        _ => throw new ArgumentOutOfRangeException(nameof(finding), finding, null),
    };

    /// <summary>Lobe of a lesion from its RAS position: side by x, upper or lower by height.</summary>
    private static string Lobe(ChestLesion lesion) => $"{(lesion.X > 0 ? "right" : "left")} {(lesion.Z > 20 ? "upper" : "lower")} lobe";

    private static string Capital(string s) => char.ToUpperInvariant(s[0]) + s[1..];

    private static string Pick(Random random, string[] options) => options[random.Next(options.Length)];
}
