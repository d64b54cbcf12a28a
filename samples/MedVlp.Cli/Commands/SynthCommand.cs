using System.CommandLine;
using System.Globalization;
using MedVlp.Synthetic;

namespace MedVlp.Cli.Commands;

/// <summary><c>medvlp synth --out DIR --count N --seed S</c>: writes synthetic brain volumes (NIfTI) and a manifest (JSONL) that the loader and <c>medvlp train</c> read.</summary>
internal static class SynthCommand
{
    public static Command Create()
    {
        var output = new Option<string>("--out") { Description = "Folder to write into (created if needed).", Required = true };
        var count = new Option<int>("--count") { Description = "Number of volumes (classes CN, MCI, AD in turn).", DefaultValueFactory = _ => 30 };
        var seed = new Option<int>("--seed") { Description = "Dataset seed.", DefaultValueFactory = _ => 1 };
        var validation = new Option<double>("--val-fraction") { Description = "Fraction of cases in the manifest's \"val\" split (every n-th case); the rest are \"train\".", DefaultValueFactory = _ => 0 };
        var command = new Command("synth", "Generate synthetic brain MRI volumes (CN / MCI / AD phantoms) with EHR-style reports: case_NNNN.nii.gz + manifest.jsonl (path, id, report, split, labels), readable by medvlp train --manifest.")
        {
            output,
            count,
            seed,
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

            var cases = SyntheticBrainDataset.Generate(n, parse.GetValue(seed));
            var manifest = SyntheticManifest.Write(cases, dir, parse.GetValue(validation));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"wrote {n} volumes and {Path.GetFileName(manifest)} to {dir}"));
            return 0;
        }));
        return command;
    }
}
