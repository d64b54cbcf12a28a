using System.CommandLine;
using System.Text.Json;
using MedVlp.Inference.Generation;
using MedVlp.Volumes.IO;

namespace MedVlp.Cli.Commands;

/// <summary><c>medvlp report --model DIR [--json] [--max-tokens N] [--temperature T] [--top-p P] [--top-k K] [--beams N]
/// [--seed S] [--stop TEXT]... [--stream] VOLUME...</c>: writes a report of each volume with a model package that has a
/// report decoder (COLIPRI), through the shared generation engine.</summary>
internal static class ReportCommand
{
    public static Command Create()
    {
        var modelDir = new Option<string>("--model") { Description = "A model package folder with a report decoder (COLIPRI).", Required = true };
        var json = new Option<bool>("--json") { Description = "Print one JSON object per volume." };
        var volumes = new Argument<string[]>("volumes") { Description = "Volume files (.nii, .nii.gz, ...).", Arity = ArgumentArity.OneOrMore };
        var generation = new GenerationCli(defaultMaxTokens: 96);
        var command = new Command("report", "Write a report of volumes with a model package that has a report decoder (COLIPRI).")
        {
            modelDir, json, volumes,
        };
        generation.AddTo(command);
        command.SetAction((parse, cancellationToken) => Task.FromResult(CliErrors.Run(() =>
        {
            var options = generation.Read(parse);
            var stream = parse.GetValue(generation.Stream) && !parse.GetValue(json);
            using var model = VisionLanguageModel.Load(parse.GetValue(modelDir)!);
            var reports = new ReportGenerator(model);
            foreach (var file in parse.GetValue(volumes)!)
            {
                var volume = VolumeReader.Read(file, null, cancellationToken);
                if (stream)
                {
                    Console.Write($"{file}: ");
                    foreach (var piece in reports.GenerateStreamingAsync(volume, options, cancellationToken).ToBlockingEnumerable(cancellationToken))
                    {
                        Console.Write(piece);
                    }

                    Console.WriteLine();
                    continue;
                }

                var report = reports.Generate(volume, options, cancellationToken);
                if (parse.GetValue(json))
                {
                    var record = new Dictionary<string, object?> { ["file"] = file, ["report"] = report.Text };
                    foreach (var (key, value) in GenerationCli.Describe(report))
                    {
                        record[key] = value;
                    }

                    Console.WriteLine(JsonSerializer.Serialize(record));
                }
                else
                {
                    Console.WriteLine($"{file}: {report.Text}");
                }
            }

            return 0;
        })));
        return command;
    }
}
