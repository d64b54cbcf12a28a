using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using MedVlp.Synthetic;
using MedVlp.Volumes.IO.Nifti;

namespace MedVlp.Cli.Commands;

/// <summary><c>medvlp synth --out DIR --count N --seed S</c>: writes synthetic brain volumes (NIfTI) and a manifest (JSONL) that the loader and <c>medvlp train</c> read.</summary>
internal static class SynthCommand
{
    public static Command Create()
    {
        var output = new Option<string>("--out") { Description = "Folder to write into (created if needed).", Required = true };
        var count = new Option<int>("--count") { Description = "Number of volumes (classes CN, MCI, AD in turn).", DefaultValueFactory = _ => 30 };
        var seed = new Option<int>("--seed") { Description = "Dataset seed.", DefaultValueFactory = _ => 1 };
        var kind = new Option<string>("--kind") { Description = "brain (MRI phantoms, CN / MCI / AD) or chest (CT phantoms in HU with findings; writes manifest.jsonl).", DefaultValueFactory = _ => "brain" };
        kind.AcceptOnlyFromAmong("brain", "chest");
        var validation = new Option<double>("--val-fraction") { Description = "Fraction of cases in the manifest's \"val\" split (every n-th case); the rest are \"train\".", DefaultValueFactory = _ => 0 };
        var command = new Command("synth", "Generate synthetic volumes with reports and a manifest.jsonl (path, id, report, split, labels) readable by medvlp train --manifest: brain MRI phantoms (CN / MCI / AD, EHR-style reports) or chest CT phantoms (five findings, radiology reports).")
        {
            output,
            count,
            seed,
            kind,
            validation,
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
                return WriteChest(dir, n, parse.GetValue(seed), parse.GetValue(validation));
            }

            var cases = SyntheticBrainDataset.Generate(n, parse.GetValue(seed));
            var manifest = SyntheticManifest.Write(cases, dir, parse.GetValue(validation));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"wrote {n} volumes and {Path.GetFileName(manifest)} to {dir}"));
            return 0;
        }));
        return command;
    }

    /// <summary>Chest CT phantoms as case_NNNN.nii.gz plus a manifest.jsonl (path, id, report, labels per finding) the loaders read.</summary>
    private static int WriteChest(string dir, int n, int seed, double validationFraction)
    {
        if (validationFraction is < 0 or >= 1)
        {
            throw new ArgumentException($"--val-fraction must be in [0, 1), got {validationFraction}.");
        }

        var every = validationFraction > 0 ? Math.Max(2, (int)Math.Round(1 / validationFraction)) : 0;
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
                ["split"] = every > 0 && (c.Index + 1) % every == 0 ? "val" : "train",
                ["labels"] = c.Findings.ToDictionary(f => f.Key.Key(), f => f.Value),
            }));
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"wrote {n} chest CT volumes and manifest.jsonl to {dir}"));
        return 0;
    }

}
