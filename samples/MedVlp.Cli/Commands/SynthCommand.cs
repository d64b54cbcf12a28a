using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using MedVlp.Synthetic;
using MedVlp.Volumes.IO.Nifti;

namespace MedVlp.Cli.Commands;

/// <summary><c>medvlp synth --out DIR --count N --seed S</c>: writes synthetic brain volumes (NIfTI) and their reports (JSONL).</summary>
internal static class SynthCommand
{
    public static Command Create()
    {
        var output = new Option<string>("--out") { Description = "Folder to write into (created if needed).", Required = true };
        var count = new Option<int>("--count") { Description = "Number of volumes (classes CN, MCI, AD in turn).", DefaultValueFactory = _ => 30 };
        var seed = new Option<int>("--seed") { Description = "Dataset seed.", DefaultValueFactory = _ => 1 };
        var kind = new Option<string>("--kind") { Description = "brain (MRI phantoms, CN / MCI / AD) or chest (CT phantoms in HU with findings; writes manifest.jsonl).", DefaultValueFactory = _ => "brain" };
        kind.AcceptOnlyFromAmong("brain", "chest");
        var command = new Command("synth", "Generate synthetic volumes with reports: brain MRI phantoms (CN / MCI / AD, EHR-style reports, reports.jsonl) or chest CT phantoms (findings, radiology reports, manifest.jsonl).")
        {
            output,
            count,
            seed,
            kind,
        };
        command.SetAction(parse => CliErrors.Run(() =>
        {
            var dir = parse.GetValue(output)!;
            var n = parse.GetValue(count);
            if (n <= 0)
            {
                throw new ArgumentException($"--count must be positive, got {n}.");
            }

            Directory.CreateDirectory(dir);
            if (parse.GetValue(kind) == "chest")
            {
                return WriteChest(dir, n, parse.GetValue(seed));
            }

            var cases = SyntheticBrainDataset.Generate(n, parse.GetValue(seed));
            using var jsonl = new StreamWriter(Path.Combine(dir, "reports.jsonl"));
            foreach (var c in cases)
            {
                var file = string.Create(CultureInfo.InvariantCulture, $"case_{c.Index:D4}.nii.gz");
                NiftiWriter.Write(c.Volume, Path.Combine(dir, file));
                jsonl.WriteLine(JsonSerializer.Serialize(new SynthRecord(
                    file, c.Diagnosis.Code(), c.Diagnosis.LabelName(), c.Subject.Age, c.Subject.IsFemale ? "F" : "M", c.Subject.Mmse, c.Report)));
            }

            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"wrote {n} volumes and reports.jsonl to {dir}"));
            return 0;
        }));
        return command;
    }

    /// <summary>Chest CT phantoms as case_NNNN.nii.gz plus a manifest.jsonl (path, id, report, labels per finding) the loaders read.</summary>
    private static int WriteChest(string dir, int n, int seed)
    {
        var cases = SyntheticChestDataset.Generate(n, seed);
        using var jsonl = new StreamWriter(Path.Combine(dir, "manifest.jsonl"));
        foreach (var c in cases)
        {
            var file = string.Create(CultureInfo.InvariantCulture, $"case_{c.Index:D4}.nii.gz");
            NiftiWriter.Write(c.Volume, Path.Combine(dir, file));
            jsonl.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object>
            {
                ["path"] = file,
                ["id"] = string.Create(CultureInfo.InvariantCulture, $"chest_{c.Index:D4}"),
                ["report"] = c.Report,
                ["labels"] = c.Findings.ToDictionary(f => f.Key.Key(), f => f.Value),
            }));
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"wrote {n} chest CT volumes and manifest.jsonl to {dir}"));
        return 0;
    }

    private sealed record SynthRecord(
        [property: System.Text.Json.Serialization.JsonPropertyName("file")] string File,
        [property: System.Text.Json.Serialization.JsonPropertyName("diagnosis")] string Diagnosis,
        [property: System.Text.Json.Serialization.JsonPropertyName("label")] string Label,
        [property: System.Text.Json.Serialization.JsonPropertyName("age")] int Age,
        [property: System.Text.Json.Serialization.JsonPropertyName("sex")] string Sex,
        [property: System.Text.Json.Serialization.JsonPropertyName("mmse")] int Mmse,
        [property: System.Text.Json.Serialization.JsonPropertyName("report")] string Report);
}
