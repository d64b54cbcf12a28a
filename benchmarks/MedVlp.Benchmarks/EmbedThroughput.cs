using System.Diagnostics;
using System.Globalization;
using MedVlp.Data;
using MedVlp.Inference.Batch;
using MedVlp.Modeling;
using MedVlp.Synthetic;
using MedVlp.Text;
using MedVlp.Volumes;
using MedVlp.Volumes.IO;
using MedVlp.Volumes.IO.Nifti;
using MedVlp.Volumes.Transforms;
using static TorchSharp.torch;

namespace MedVlp.Benchmarks;

/// <summary>
/// <c>-- embed-throughput</c>: volumes per second of the streaming embedder (<see cref="StreamingEmbedder"/>) next to its
/// two halves measured alone in the same run: the loader (read gzip NIfTI + the model's preprocessing, the same worker
/// count) and the model (the volume encoder on batches prepared beforehand). Usage: <c>-- embed-throughput [COUNT]
/// [TORCH_THREADS]</c>.
/// </summary>
internal static class EmbedThroughput
{
    /// <param name="count">Synthetic volumes per round.</param>
    /// <param name="torchThreads">libtorch intra-op threads (0: leave libtorch's default). One keeps the model-alone
    /// rate steady on a shared machine: with two, an OpenMP barrier waiting on a descheduled thread made single batches
    /// of the tiny model take 1.6 s instead of 3 ms, and "model alone" swung 500-fold between rounds.</param>
    public static void Run(int count, int torchThreads = 0)
    {
        if (torchThreads > 0)
        {
            set_num_threads(torchThreads);
        }

        const int Batch = 8;
        var workers = Environment.ProcessorCount;
        var dir = Path.Combine(Path.GetTempPath(), "medvlp-embed-bench-" + Environment.ProcessId);
        Directory.CreateDirectory(dir);
        try
        {
            var entries = SyntheticBrainDataset.Generate(count, 5).Select(c =>
            {
                var path = Path.Combine(dir, $"case_{c.Index:D4}.nii.gz");
                NiftiWriter.Write(c.Volume, path);
                return new ManifestEntry { Id = c.Index.ToString(CultureInfo.InvariantCulture), Path = path };
            }).ToArray();
            var tokenizer = WordPieceTextTokenizer.FromVocabularyFile(TestData.File("bert/vocab.txt"));
            var config = Clip3dConfig.Small(tokenizer.VocabularySize);
            var size = config.Volume.InputSize;
            var preprocessing = new TransformPipeline(
            [
                new MinMaxNormalize { OutputMin = 0, OutputMax = 1 },
                new ResizeLongestSide { Size = size, AlignCorners = true, Interpolation = Interpolation.Trilinear },
                new CropOrPad { Size = new VolumeShape(size, size, size), FillValue = 0, Centering = CropOrPadCentering.ExtraAfter },
            ], "bench");
            using var model = VisionLanguageModel.Create(config, tokenizer, preprocessing, 1);

            // Warm-up (JIT, libtorch's first calls) of both halves on a few volumes, outside the timings.
            var warm = new VolumeDataLoader(entries.Take(Batch), preprocessing, new VolumeLoaderOptions { BatchSize = Batch, Workers = workers, Shuffle = false });
            foreach (var b in warm.ReadEpochAsync(0).ToBlockingEnumerable())
            {
                using var t = b.ToTensor();
                using var noGrad = no_grad();
                using var scope = NewDisposeScope();
                GC.KeepAlive(model.DualEncoder.EncodeImages(t).data<float>().ToArray());
            }

            var warmEmbedder = new StreamingEmbedder(model, new StreamingEmbedderOptions { BatchSize = Batch, Workers = workers });
            foreach (var r in warmEmbedder.EmbedAsync(Inputs(entries.Take(2 * Batch))).ToBlockingEnumerable())
            {
                GC.KeepAlive(r);
            }

            // Rounds of (loader alone, model alone, both overlapped) back to back, so a burst of load from other jobs
            // falls on the three alike; each round's ratio, and the median ratio over the rounds.
            const int Rounds = 7;
            var ratios = new List<double>();
            var rates = new List<(double Loader, double Model, double Stream)>();
            for (var round = 0; round < Rounds; round++)
            {
                // The loader alone: read + preprocess every volume (what the embedder's workers do), same worker count.
                var volumes = new Volume[entries.Length];
                var sw = Stopwatch.StartNew();
                Parallel.For(0, entries.Length, new ParallelOptions { MaxDegreeOfParallelism = workers },
                    i => volumes[i] = preprocessing.Apply(VolumeReader.Read(entries[i].Path)));
                var loaderRate = count / sw.Elapsed.TotalSeconds;
                var prepared = volumes.Chunk(Batch).Select(b => Collator.CollateVolumes(b)).ToList();

                // The model alone on the cached batches.
                sw.Restart();
                using (no_grad())
                {
                    foreach (var t in prepared)
                    {
                        using var scope = NewDisposeScope();
                        GC.KeepAlive(model.DualEncoder.EncodeImages(t).data<float>().ToArray());
                    }
                }

                var modelRate = count / sw.Elapsed.TotalSeconds;
                foreach (var t in prepared)
                {
                    t.Dispose();
                }

                // Both overlapped: the streaming embedder.
                var embedder = new StreamingEmbedder(model, new StreamingEmbedderOptions { BatchSize = Batch, Workers = workers });
                sw.Restart();
                var n = 0;
                foreach (var r in embedder.EmbedAsync(Inputs(entries)).ToBlockingEnumerable())
                {
                    n += r.Succeeded ? 1 : 0;
                }

                var streamRate = n / sw.Elapsed.TotalSeconds;
                rates.Add((loaderRate, modelRate, streamRate));
                ratios.Add(streamRate / Math.Min(loaderRate, modelRate));
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"round {round + 1}: loader alone {loaderRate:F1} volumes/s, model alone {modelRate:F1} volumes/s, streaming embed {streamRate:F1} volumes/s = {ratios[^1]:F2}x the slower half"));
            }

            static double Median(IEnumerable<double> values)
            {
                var sorted = values.Order().ToArray();
                return sorted[sorted.Length / 2];
            }

            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{count} synthetic volumes (gzip NIfTI 56x64x56 -> {size}^3), batch {Batch}, {workers} workers, {get_num_threads()} libtorch threads, medians of {Rounds} rounds: loader alone {Median(rates.Select(r => r.Loader)):F1} volumes/s, model alone {Median(rates.Select(r => r.Model)):F1} volumes/s, streaming embed {Median(rates.Select(r => r.Stream)):F1} volumes/s; streaming / slower half: median {Median(ratios):F2}x (rounds {string.Join(", ", ratios.Select(r => r.ToString("F2", CultureInfo.InvariantCulture)))})"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static async IAsyncEnumerable<EmbeddingInput> Inputs(IEnumerable<ManifestEntry> entries)
    {
        foreach (var e in entries)
        {
            await Task.Yield();
            yield return new EmbeddingInput(e.Id, e.Path);
        }
    }
}
