using System.CommandLine;
using System.Text.Json;
using MedVlp.Architectures.MedBlip;
using MedVlp.Volumes.IO;

namespace MedVlp.Cli.Commands;

/// <summary><c>medvlp ask --model DIR --question "..." [--context "EHR text"] [--max-tokens N] [--json] VOLUME...</c>: visual
/// question answering with a MedBLIP model package (greedy decoding with the key/value cache).</summary>
internal static class AskCommand
{
    public static Command Create()
    {
        var modelDir = new Option<string>("--model") { Description = "A MedBLIP model package folder (for example medvlp-demo/model).", Required = true };
        var question = new Option<string>("--question") { Description = "The question, for example \"What will this subject be diagnosed with?\".", Required = true };
        var context = new Option<string?>("--context") { Description = "EHR text put before the question (as MedBLIP's prompt)." };
        var maxTokens = new Option<int>("--max-tokens") { Description = "The most tokens of an answer.", DefaultValueFactory = _ => 16 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object per volume." };
        var volumes = new Argument<string[]>("volumes") { Description = "Volume files (.nii, .nii.gz, ...).", Arity = ArgumentArity.OneOrMore };
        var command = new Command("ask", "Ask a MedBLIP model package a question about volumes (visual question answering).")
        {
            modelDir, question, context, maxTokens, json, volumes,
        };
        command.SetAction((parse, cancellationToken) => Task.FromResult(CliErrors.Run(() =>
        {
            var n = parse.GetValue(maxTokens);
            if (n < 1 || n > 256)
            {
                throw new ArgumentException($"--max-tokens must be in [1, 256], got {n}.");
            }

            using var model = VisionLanguageModel.Load(parse.GetValue(modelDir)!);
            var assistant = new MedBlipAssistant(model);
            var files = parse.GetValue(volumes)!;
            var loaded = files.Select(f => VolumeReader.Read(f)).ToArray();
            var q = parse.GetValue(question)!;
            var answers = assistant.Ask(loaded, [.. files.Select(_ => q)], [.. files.Select(_ => parse.GetValue(context))], n, cancellationToken);
            for (var i = 0; i < files.Length; i++)
            {
                var diagnosis = MedBlipText.ParseDiagnosis(answers[i]);
                Console.WriteLine(parse.GetValue(json)
                    ? JsonSerializer.Serialize(new Dictionary<string, object?> { ["file"] = files[i], ["question"] = q, ["answer"] = answers[i], ["diagnosis"] = diagnosis?.ToString() })
                    : $"{files[i]}: {answers[i]}");
            }

            return 0;
        })));
        return command;
    }
}
