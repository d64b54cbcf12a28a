// CaseRetrieval: embed an archive of reported cases, index it, and show the five cases most similar to a new volume.
//
//   dotnet run --project samples/CaseRetrieval -c Release -- [--model out/demo/model] [--out out/case-retrieval] [--cases 300]
//
// The model is a MedVlp package (bash scripts/demo.sh trains one into out/demo/model).
using System.Globalization;
using System.Text.Json;
using MedVlp;
using MedVlp.Data;
using MedVlp.Inference.Batch;
using MedVlp.Retrieval;
using MedVlp.Synthetic;
using MedVlp.Volumes.IO.Nifti;
using Spectre.Console;

var modelDir = Option("--model", "out/demo/model");
var outDir = Option("--out", "out/case-retrieval");
var caseCount = int.Parse(Option("--cases", "300"), CultureInfo.InvariantCulture);
const int ArchiveSeed = 11, TopK = 5;
if (!Directory.Exists(modelDir))
{
    Console.Error.WriteLine($"No model package at {modelDir}: run `bash scripts/demo.sh` (it trains one into out/demo/model) or pass --model DIR.");
    return 2;
}

using var model = VisionLanguageModel.Load(modelDir);
var archive = Path.Combine(outDir, "archive");
var embeddingsDir = Path.Combine(outDir, "embeddings");
var indexDir = Path.Combine(outDir, "index");
Directory.CreateDirectory(archive);

// 1. The archive: synthetic brain MRIs (NIfTI) with their reports, listed in a manifest.
var manifestPath = Path.Combine(outDir, "manifest.jsonl");
var cases = new Dictionary<string, SyntheticBrainCase>(StringComparer.Ordinal);
await AnsiConsole.Progress().AutoClear(false).Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
    .StartAsync(async ctx =>
    {
        var generate = ctx.AddTask("Writing the archive", maxValue: caseCount);
        await using (var manifest = new StreamWriter(manifestPath))
        {
            for (var n = 0; n < caseCount; n++)
            {
                var c = SyntheticBrainDataset.GenerateCase(ArchiveSeed, n);
                var id = string.Create(CultureInfo.InvariantCulture, $"case_{n:D4}");
                var file = Path.Combine(archive, id + ".nii.gz");
                if (!File.Exists(file))
                {
                    NiftiWriter.Write(c.Volume, file);
                }

                cases[id] = c;
                await manifest.WriteLineAsync(JsonSerializer.Serialize(new Dictionary<string, string> { ["id"] = id, ["path"] = Path.GetFullPath(file), ["report"] = c.Report }));
                generate.Increment(1);
            }
        }

        // 2. Embed it: streaming, resumable, one Parquet part per batch.
        var embed = ctx.AddTask("Embedding", maxValue: caseCount);
        var entries = Manifest.Load(manifestPath).Entries;
        var summary = await EmbeddingJob.RunAsync(model, entries, new EmbeddingJobOptions { OutputDirectory = embeddingsDir, Embedder = new StreamingEmbedderOptions { BatchSize = 16 } },
            new Progress<EmbeddingProgress>(p => embed.Value = p.Embedded + p.Failed));
        embed.Value = caseCount;
        await EmbeddingJob.MergeAsync(embeddingsDir, entries, Path.Combine(embeddingsDir, EmbeddingJob.MergedFileName));
        if (summary.Failed > 0)
        {
            throw new InvalidOperationException($"{summary.Failed} volumes could not be embedded; see {summary.FailuresFile}.");
        }
    });

// 3. Index it: an exact top-k index (vectors.npy + ids.txt, numpy opens the same matrix).
var (rows, metadata) = await EmbeddingParquet.ReadAsync(Path.Combine(embeddingsDir, EmbeddingJob.MergedFileName));
ExactIndex.Build(indexDir, rows.Select(r => new CaseRecord { Id = r.Id, SourcePath = r.SourcePath, Report = r.Report, Embedding = r.Embedding }),
    new ExactIndexBuildOptions { ModelFingerprint = metadata[EmbeddingParquet.ModelFingerprintKey] });

// 4. A new patient: a volume that is not in the archive. Search by volume through the VectorData collection.
var query = SyntheticBrainDataset.GenerateCase(ArchiveSeed + 1000, 0);
using var collection = new ExactIndexCollection(ExactIndex.Open(indexDir), CaseEmbeddings.From(model), ownsIndex: true);
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"New volume: {query.Diagnosis.LabelName()} (age {query.Subject.Age}, MMSE {query.Subject.Mmse}); the {TopK} most similar of {caseCount} archived cases:"));
var table = new Table().AddColumn("#").AddColumn("case").AddColumn(new TableColumn("cosine").RightAligned()).AddColumn("diagnosis").AddColumn("report");
var rank = 0;
var sameDiagnosis = 0;
await foreach (var hit in collection.SearchAsync(query.Volume, TopK))
{
    var c = cases[hit.Record.Id];
    sameDiagnosis += c.Diagnosis == query.Diagnosis ? 1 : 0;
    table.AddRow((++rank).ToString(CultureInfo.InvariantCulture), hit.Record.Id, (hit.Score ?? 0).ToString("F4", CultureInfo.InvariantCulture),
        Markup.Escape(c.Diagnosis.LabelName()), Markup.Escape(hit.Record.Report));
}

AnsiConsole.Write(table);
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{sameDiagnosis} of {TopK} share the new volume's diagnosis. Index: {Path.GetFullPath(indexDir)}"));
return 0;

string Option(string name, string fallback)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
}
