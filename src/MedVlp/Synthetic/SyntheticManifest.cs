using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using MedVlp.Volumes.IO.Nifti;

namespace MedVlp.Synthetic;

/// <summary>
/// Writes synthetic cases as a dataset that <see cref="Data.Manifest"/> and <see cref="Data.VolumeDataLoader"/> read:
/// <c>case_NNNN.nii.gz</c> files and a <c>manifest.jsonl</c> with <c>path</c>, <c>id</c>, <c>report</c>, <c>split</c> and
/// <c>labels</c> (diagnosis code, label name, age, sex, MMSE).
/// </summary>
public static class SyntheticManifest
{
    /// <summary>The manifest's file name.</summary>
    public const string FileName = "manifest.jsonl";

    /// <summary>Writes the volumes and the manifest into <paramref name="directory"/>; returns the manifest's path.</summary>
    /// <param name="cases">The cases.</param>
    /// <param name="directory">The folder (created if needed).</param>
    /// <param name="validationFraction">The fraction of cases (every n-th) put in the <c>val</c> split; the rest are <c>train</c>.</param>
    public static string Write(IReadOnlyList<SyntheticBrainCase> cases, string directory, double validationFraction = 0)
    {
        ArgumentNullException.ThrowIfNull(cases);
        ArgumentException.ThrowIfNullOrEmpty(directory);
        if (validationFraction is < 0 or >= 1)
        {
            throw new ArgumentOutOfRangeException(nameof(validationFraction), validationFraction, "must be in [0, 1).");
        }

        Directory.CreateDirectory(directory);
        var every = validationFraction > 0 ? Math.Max(2, (int)Math.Round(1 / validationFraction)) : 0;
        var path = Path.Combine(directory, FileName);
        var lines = new StringBuilder();
        for (var n = 0; n < cases.Count; n++)
        {
            var c = cases[n];
            var file = string.Create(CultureInfo.InvariantCulture, $"case_{c.Index:D4}.nii.gz");
            NiftiWriter.Write(c.Volume, Path.Combine(directory, file));
            var line = new JsonObject
            {
                ["path"] = file,
                ["id"] = string.Create(CultureInfo.InvariantCulture, $"case_{c.Index:D4}"),
                ["report"] = c.Report,
                ["split"] = every > 0 && (n + 1) % every == 0 ? "val" : "train",
                ["labels"] = new JsonObject
                {
                    ["diagnosis"] = c.Diagnosis.Code(),
                    ["label"] = c.Diagnosis.LabelName(),
                    ["age"] = c.Subject.Age,
                    ["sex"] = c.Subject.IsFemale ? "F" : "M",
                    ["mmse"] = c.Subject.Mmse,
                },
            };
            lines.AppendLine(line.ToJsonString());
        }

        File.WriteAllText(path, lines.ToString());
        return path;
    }
}
