using System.CommandLine;
using System.Text.Json;
using MedVlp.Architectures.MedBlip;
using MedVlp.Inference.Generation;
using MedVlp.Volumes.IO;

namespace MedVlp.Cli.Commands;

/// <summary><c>medvlp ask --model DIR --question "..." [--context "EHR text"] [--max-tokens N] [--temperature T] [--top-p P]
/// [--top-k K] [--beams N] [--seed S] [--stop TEXT]... [--stream] [--json] VOLUME...</c>: visual question answering with a
/// MedBLIP model package through the shared generation engine (key/value cache; greedy, beams or seeded sampling).</summary>
internal static class AskCommand
{
    public static Command Create()
    {
        var modelDir = new Option<string>("--model") { Description = "A MedBLIP model package folder (for example medvlp-demo/model).", Required = true };
        var question = new Option<string>("--question") { Description = "The question, for example \"What will this subject be diagnosed with?\".", Required = true };
        var context = new Option<string?>("--context") { Description = "EHR text put before the question (as MedBLIP's prompt)." };
        var json = new Option<bool>("--json") { Description = "Print one JSON object per volume." };
        var volumes = new Argument<string[]>("volumes") { Description = "Volume files (.nii, .nii.gz, ...).", Arity = ArgumentArity.OneOrMore };
        var generation = new GenerationCli(defaultMaxTokens: 16);
        var command = new Command("ask", "Ask a MedBLIP model package a question about volumes (visual question answering).")
        {
            modelDir, question, context, json, volumes,
        };
        generation.AddTo(command);
        command.SetAction((parse, cancellationToken) => Task.FromResult(CliErrors.Run(() =>
        {
            var options = generation.Read(parse);
            var stream = parse.GetValue(generation.Stream) && !parse.GetValue(json);
            using var model = VisionLanguageModel.Load(parse.GetValue(modelDir)!);
            var vqa = new VisualQuestionAnswering(model);
            var q = parse.GetValue(question)!;
            var ehr = parse.GetValue(context);
            foreach (var file in parse.GetValue(volumes)!)
            {
                var volume = VolumeReader.Read(file, null, cancellationToken);
                if (stream)
                {
                    Console.Write($"{file}: ");
                    foreach (var piece in vqa.AnswerStreamingAsync(volume, q, ehr, options, cancellationToken).ToBlockingEnumerable(cancellationToken))
                    {
                        Console.Write(piece);
                    }

                    Console.WriteLine();
                    continue;
                }

                var answer = vqa.Answer(volume, q, ehr, options, cancellationToken);
                if (parse.GetValue(json))
                {
                    var record = new Dictionary<string, object?> { ["file"] = file, ["question"] = q, ["answer"] = answer.Text, ["diagnosis"] = MedBlipText.ParseDiagnosis(answer.Text)?.ToString() };
                    foreach (var (key, value) in GenerationCli.Describe(answer))
                    {
                        record[key] = value;
                    }

                    Console.WriteLine(JsonSerializer.Serialize(record));
                }
                else
                {
                    Console.WriteLine($"{file}: {answer.Text}");
                }
            }

            return 0;
        })));
        return command;
    }
}
