using System.Diagnostics;
using System.Globalization;
using MedVlp.Data;
using MedVlp.Losses;
using MedVlp.Modeling;
using MedVlp.Synthetic;
using MedVlp.Text;
using MedVlp.Training;
using static TorchSharp.torch;

namespace MedVlp.Benchmarks;

/// <summary>
/// <c>-- loader-vs-cached [ROUNDS] [TORCH_THREADS]</c>: does the data loader keep the model busy? The <c>tiny</c> clip3d
/// model trained by <see cref="Trainer"/> on 128 synthetic gzip NIfTI volumes (MedBLIP preprocessing to 32^3), fed three
/// ways in interleaved rounds: batches cached in memory, <see cref="VolumeDataLoader"/> decoding and preprocessing every
/// volume every epoch, and <see cref="VolumeDataLoader"/> with its on-disk cache of the deterministic preprocessing
/// (<see cref="VolumeLoaderOptions.CacheDirectory"/>, filled by one pass before the timings). Prints steps/s per round
/// and the median ratio of each loader to the cached rate of the same round.
/// </summary>
internal static class LoaderVersusCached
{
    public static void Run(int rounds, int threads)
    {
        set_num_threads(threads);
        var tokenizer = WordPieceTextTokenizer.FromVocabularyFile(TestData.File("bert/vocab.txt"));
        var config = Clip3dConfig.Tiny(tokenizer.VocabularySize);
        var dir = Directory.CreateTempSubdirectory("medvlp-bench-loader-").FullName;
        try
        {
            const int Count = 128, Batch = 32, Epochs = 3;
            var cases = SyntheticBrainDataset.Generate(Count, 5);
            var manifest = SyntheticManifest.Write(cases, dir);
            var entries = Manifest.Load(manifest).Entries;
            using var model = VisionLanguageModel.Create(config, tokenizer, TrainingRecipe.Preprocessing(config.Volume.InputSize), seed: 1);
            using var objective = new DualEncoderObjective(model, new ClipLoss());
            var text = new TextCollation { MaxTokens = config.MaxTextTokens };
            using var cached = new PreparedTrainingData([.. cases.Select(c => c.Volume)], [.. cases.Select(c => c.Report)], v => model.PrepareVolumesForTraining(v),
                new TrainingBatchCollator(model.Collator, text), Batch, seed: 1);
            var workers = Math.Max(1, Environment.ProcessorCount - threads);
            LoaderTrainingData Loader(string? cache) => new(
                new VolumeDataLoader(entries, model.Preprocessing, new VolumeLoaderOptions { BatchSize = Batch, Workers = workers, PrefetchBatches = 2, Seed = 1, DropLast = true, CacheDirectory = cache }),
                new TrainingBatchCollator(model.Collator, text));
            var cacheDir = Path.Combine(dir, "cache");
            var withCache = Loader(cacheDir);
            foreach (var b in withCache.ReadEpoch(1, 0, CancellationToken.None))
            {
                b.Dispose();
            }

            var sources = new (string Name, ITrainingData Data)[]
            {
                ("cached batches", cached),
                ($"VolumeDataLoader ({workers} worker(s), NIfTI files)", Loader(null)),
                ($"VolumeDataLoader ({workers} worker(s), on-disk cache)", withCache),
            };
            Console.WriteLine($"tiny clip3d, batch {Batch}, {Count} volumes, {Epochs} epochs per measurement, {threads} libtorch thread(s), {workers} loader worker(s), {Environment.ProcessorCount} cores");
            var ratios = new List<double>[] { [], [] };
            Fit(objective, cached, 1);
            for (var round = 0; round < rounds; round++)
            {
                var rates = sources.Select(s => Fit(objective, s.Data, Epochs)).ToArray();
                ratios[0].Add(rates[1] / rates[0]);
                ratios[1].Add(rates[2] / rates[0]);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"round {round + 1}: {string.Join(", ", sources.Zip(rates).Select(p => $"{p.First.Name} {p.Second:F2} steps/s"))}; loader / cached {ratios[0][^1]:F2}x, loader with cache / cached {ratios[1][^1]:F2}x"));
            }

            static double Median(List<double> values) => values.Order().ElementAt(values.Count / 2);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"median over {rounds} rounds: loader / cached {Median(ratios[0]):F2}x, loader with on-disk cache / cached {Median(ratios[1]):F2}x"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static double Fit(TrainingObjective objective, ITrainingData data, int epochs)
    {
        using var trainer = new Trainer(objective, new TrainerOptions { Epochs = epochs });
        var clock = Stopwatch.StartNew();
        var summary = trainer.Fit(data);
        return summary.StepsDone / clock.Elapsed.TotalSeconds;
    }
}
