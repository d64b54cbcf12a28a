using System.Diagnostics;
using MedVlp.Backbones.Onnx;
using MedVlp.Modeling;
using MedVlp.Text;
using MedVlp.Weights;
using static TorchSharp.torch;

namespace MedVlp.Benchmarks;

/// <summary>
/// all-MiniLM-L6-v2 on ONNX Runtime and on MedVlp's TorchSharp BERT (same weights), alternating in one process so that
/// load on the machine hits both alike: sentences per second for batches of 1, 8 and 32 report sentences, with the
/// TorchSharp forward under <c>no_grad</c> and under <c>inference_mode</c>. Run:
/// <c>dotnet run -c Release --project benchmarks/MedVlp.Benchmarks -- minilm [ROUNDS] [THREADS]</c>.
/// </summary>
internal static class MiniLmSideBySide
{
    private static readonly string[] Reports =
    [
        "small left pleural effusion", "no acute intracranial abnormality", "mild cardiomegaly without edema",
        "diffuse white matter hyperintensities consistent with small vessel disease", "the lungs are clear",
        "moderate right pleural effusion with adjacent atelectasis", "ventricles and sulci are normal in size",
        "no evidence of pneumothorax",
    ];

    public static void Run(int rounds, int threads)
    {
        var model = TestData.File("minilm/model.onnx");
        using var onnx = new OnnxTextBackbone(model, new OnnxBackboneOptions { IntraOpThreads = threads });
        set_num_threads(threads);
        using var bert = new BertModel(new BertConfig { HiddenSize = 384, NumHiddenLayers = 6, NumAttentionHeads = 12, IntermediateSize = 1536 });
        var weights = OnnxInitializers.Load(model);
        WeightLoader.Load(bert, weights, new WeightLoadOptions { Layout = "hf-bert" });
        foreach (var w in weights.Values)
        {
            w.Dispose();
        }

        bert.eval();
        foreach (var p in bert.parameters())
        {
            p.requires_grad = false;
        }

        var tokenizer = WordPieceTextTokenizer.FromVocabularyFile(TestData.File("minilm/vocab.txt"));
        Console.WriteLine($"threads {threads} (libtorch {get_num_threads()}, interop {get_num_interop_threads()}), OMP_WAIT_POLICY={Environment.GetEnvironmentVariable("OMP_WAIT_POLICY") ?? "(unset)"}, {rounds} rounds; sentences/s, median of rounds");
        Console.WriteLine("batch | tokens | ONNX Runtime | TorchSharp no_grad | TorchSharp inference_mode | ratio ONNX / TorchSharp(inference_mode)");
        foreach (var batchSize in (Environment.GetEnvironmentVariable("MINILM_BATCHES") ?? "1,8,32").Split(',').Select(b => int.Parse(b, System.Globalization.CultureInfo.InvariantCulture)))
        {
            var batch = tokenizer.EncodeBatch(Enumerable.Range(0, batchSize).Select(i => Reports[i % Reports.Length]).ToArray(), 128);
            using var ids = tensor(batch.Ids.ToArray(), [batch.BatchSize, batch.SequenceLength]);
            using var mask = tensor(batch.AttentionMask.ToArray(), [batch.BatchSize, batch.SequenceLength]);
            var iterations = Math.Max(2, 16 / batchSize);
            var timesOnnx = new List<double>();
            var timesGrad = new List<double>();
            var timesInference = new List<double>();
            for (var r = 0; r < rounds + 1; r++)
            {
                var a = Time(iterations, () =>
                {
                    using var h = onnx.Forward(ids, mask);
                    _ = h[0, 0, 0].item<float>();
                });
                var b = Time(iterations, () =>
                {
                    using var noGrad = no_grad();
                    using var h = bert.forward(ids, mask);
                    _ = h[0, 0, 0].item<float>();
                });
                var c = Time(iterations, () =>
                {
                    using var inference = inference_mode();
                    using var h = bert.forward(ids, mask);
                    _ = h[0, 0, 0].item<float>();
                });
                if (r > 0)
                {
                    timesOnnx.Add(a);
                    timesGrad.Add(b);
                    timesInference.Add(c);
                }
            }

            double Rate(List<double> seconds) => batchSize / seconds.Order().ElementAt(seconds.Count / 2);
            Console.WriteLine($"{batchSize,5} | {batch.SequenceLength,6} | {Rate(timesOnnx),12:F0} | {Rate(timesGrad),18:F0} | {Rate(timesInference),25:F0} | {Rate(timesOnnx) / Rate(timesInference):F2}");
        }
    }

    /// <summary>Mean seconds per call.</summary>
    private static double Time(int iterations, Action action)
    {
        action();
        var watch = Stopwatch.StartNew();
        for (var i = 0; i < iterations; i++)
        {
            action();
        }

        return watch.Elapsed.TotalSeconds / iterations;
    }
}
