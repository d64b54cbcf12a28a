using MedVlp.Volumes;

namespace MedVlp.Synthetic;

/// <summary>One generated chest CT: the volume in Hounsfield units, its findings and its free-text report.</summary>
public sealed class SyntheticChestCase
{
    internal SyntheticChestCase(int index, Volume volume, IReadOnlyDictionary<ChestFinding, bool> findings, string report, IReadOnlyList<ChestLesion> lesions)
    {
        Index = index;
        Volume = volume;
        Findings = findings;
        Report = report;
        Lesions = lesions;
    }

    /// <summary>The case's index in its dataset.</summary>
    public int Index { get; }

    /// <summary>The CT volume in HU (air -1000), stored LPS or RAS with a realistic anisotropic spacing.</summary>
    public Volume Volume { get; }

    /// <summary>Whether each finding is present.</summary>
    public IReadOnlyDictionary<ChestFinding, bool> Findings { get; }

    /// <summary>The report: "FINDINGS: ... IMPRESSION: ...", mentioning every present finding and negating some absent ones.</summary>
    public string Report { get; }

    /// <summary>Where the focal findings are, in RAS+ millimetres (for tests, overlays and localisation metrics).</summary>
    public IReadOnlyList<ChestLesion> Lesions { get; }

    /// <summary>The findings present.</summary>
    public IEnumerable<ChestFinding> Present => Findings.Where(f => f.Value).Select(f => f.Key);
}

/// <summary>A focal finding's position and size in RAS+ millimetres.</summary>
/// <param name="Finding">The finding.</param>
/// <param name="X">Centre, right (+) to left (-).</param>
/// <param name="Y">Centre, anterior (+) to posterior (-).</param>
/// <param name="Z">Centre, superior (+) to inferior (-).</param>
/// <param name="RadiusMm">Radius (nodules, bullae) or largest semi-axis (consolidation).</param>
public sealed record ChestLesion(ChestFinding Finding, double X, double Y, double Z, double RadiusMm);
