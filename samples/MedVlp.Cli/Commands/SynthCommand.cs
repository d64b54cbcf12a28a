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
        var command = new Command("synth", "Generate synthetic brain MRI volumes (CN / MCI / AD phantoms) with EHR-style reports: case_NNNN.nii.gz + reports.jsonl.")
        {
            output,
            count,
            seed,
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

    private sealed record SynthRecord(
        [property: System.Text.Json.Serialization.JsonPropertyName("file")] string File,
        [property: System.Text.Json.Serialization.JsonPropertyName("diagnosis")] string Diagnosis,
        [property: System.Text.Json.Serialization.JsonPropertyName("label")] string Label,
        [property: System.Text.Json.Serialization.JsonPropertyName("age")] int Age,
        [property: System.Text.Json.Serialization.JsonPropertyName("sex")] string Sex,
        [property: System.Text.Json.Serialization.JsonPropertyName("mmse")] int Mmse,
        [property: System.Text.Json.Serialization.JsonPropertyName("report")] string Report);
}
