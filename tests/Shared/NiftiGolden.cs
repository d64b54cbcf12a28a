using System.Text.Json;

namespace MedVlp.Testing;

/// <summary>The nibabel view of each fetched NIfTI file (tests/golden/make_nifti_golden.py -> nifti_info.json).</summary>
internal static class NiftiGolden
{
    private static readonly Lazy<Dictionary<string, JsonElement>> Entries = new(() =>
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(TestData.Golden("nifti_info.json")));
        return doc.RootElement.EnumerateObject()
            .Where(p => !p.Name.StartsWith('_'))
            .ToDictionary(p => p.Name, p => p.Value.Clone());
    });

    /// <summary>All entries, keyed by path relative to the test data folder.</summary>
    public static IReadOnlyDictionary<string, JsonElement> All => Entries.Value;

    /// <summary>Files nibabel loads as a single NIfTI image with voxel data.</summary>
    public static IEnumerable<string> LoadableImages => All
        .Where(kv => kv.Value.GetProperty("class").GetString() is "Nifti1Image" or "Nifti2Image")
        .Select(kv => kv.Key)
        .Order(StringComparer.Ordinal);

    public static double[] Doubles(JsonElement e) => [.. e.EnumerateArray().Select(x => x.GetDouble())];

    public static double[][] Matrix(JsonElement e) => [.. e.EnumerateArray().Select(Doubles)];
}
