using System.CommandLine;
using System.Globalization;
using MedVlp.Data;
using MedVlp.Inference.Batch;
using Spectre.Console;

namespace MedVlp.Cli.Commands;

/// <summary>
/// <c>medvlp embed --model DIR --manifest FILE --out DIR [--shard i/n] [--batch N]</c>: embeds every volume of a
/// manifest into Parquet part files (resumable, shardable); <c>medvlp embed merge</c> joins the parts.
/// </summary>
internal static class EmbedCommand
{
    public static Command Create()
    {
        var modelDir = new Option<string>("--model") { Description = "A model package folder.", Required = true };
        var manifest = new Option<string>("--manifest") { Description = "The manifest (.csv or .jsonl) listing id, path and report of every volume.", Required = true };
        var output = new Option<string>("--out") { Description = "The output folder for part-*.parquet and failures-*.jsonl.", Required = true };
        var shard = new Option<string>("--shard") { Description = "This job's shard i/n (entries at positions p with p mod n = i).", DefaultValueFactory = _ => "0/1" };
        var batch = new Option<int>("--batch") { Description = "Volumes per forward pass (one part file each).", DefaultValueFactory = _ => 8 };
        var workers = new Option<int>("--workers") { Description = "Threads reading and preprocessing volumes.", DefaultValueFactory = _ => Environment.ProcessorCount };
        var command = new Command("embed", "Embed every volume of a manifest into Parquet (id, source_path, report, embedding). A rerun skips finished rows; unreadable volumes go to failures-I-of-N.jsonl.")
        {
            modelDir, manifest, output, shard, batch, workers,
        };
        command.SetAction((parse, cancellationToken) => Task.FromResult(CliErrors.Run(() =>
        {
            var (index, count) = VolumeLoaderOptions.ParseShard(parse.GetValue(shard)!);
            var entries = Manifest.Load(parse.GetValue(manifest)!, new ManifestOptions { CheckFilesExist = false }).Entries;
            using var model = VisionLanguageModel.Load(parse.GetValue(modelDir)!);
            var options = new EmbeddingJobOptions
            {
                OutputDirectory = parse.GetValue(output)!,
                ShardIndex = index,
                ShardCount = count,
                Embedder = new StreamingEmbedderOptions { BatchSize = parse.GetValue(batch), Workers = parse.GetValue(workers) },
            };
            var total = EmbeddingJob.ShardSize(entries.Count, index, count);
            EmbeddingJobSummary summary;
            if (AnsiConsole.Profile.Capabilities.Interactive && !Console.IsOutputRedirected)
            {
                summary = null!;
                AnsiConsole.Progress().AutoClear(false).Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
                    .StartAsync(async ctx =>
                    {
                        var task = ctx.AddTask(string.Create(CultureInfo.InvariantCulture, $"embed shard {index}/{count}"), maxValue: total);
                        summary = await EmbeddingJob.RunAsync(model, entries, options, new InlineProgress<EmbeddingProgress>(p => task.Value = p.Embedded + p.Failed), cancellationToken);
                    }).GetAwaiter().GetResult();
            }
            else
            {
                summary = EmbeddingJob.RunAsync(model, entries, options, null, cancellationToken).GetAwaiter().GetResult();
            }

            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"shard {index}/{count}: {summary.Embedded} embedded, {summary.Skipped} already done, {summary.Failed} failed{(summary.Failed > 0 ? $" (see {summary.FailuresFile})" : "")}"));
            return summary.Failed > 0 ? 3 : 0;
        })));
        command.Subcommands.Add(CreateMerge());
        return command;
    }

    private static Command CreateMerge()
    {
        var manifest = new Option<string>("--manifest") { Description = "The manifest the parts were made from (every id must be present once).", Required = true };
        var output = new Option<string>("--out") { Description = "The folder holding the part-*.parquet files of every shard.", Required = true };
        var merged = new Option<string?>("--output") { Description = "The merged file (default OUT/embeddings.parquet)." };
        var command = new Command("merge", "Join the part files of all shards into one Parquet file, checking that every manifest id is present exactly once.")
        {
            manifest, output, merged,
        };
        command.SetAction((parse, cancellationToken) => Task.FromResult(CliErrors.Run(() =>
        {
            var entries = Manifest.Load(parse.GetValue(manifest)!, new ManifestOptions { CheckFilesExist = false }).Entries;
            var dir = parse.GetValue(output)!;
            var target = parse.GetValue(merged) ?? Path.Combine(dir, EmbeddingJob.MergedFileName);
            try
            {
                var rows = EmbeddingJob.MergeAsync(dir, entries, target, cancellationToken).GetAwaiter().GetResult();
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"merged {rows} rows into {target}"));
                return 0;
            }
            catch (InvalidDataException ex)
            {
                Console.Error.WriteLine($"medvlp: error: {ex.Message}");
                return CliErrors.BadInput;
            }
        })));
        return command;
    }
}
