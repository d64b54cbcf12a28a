using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using MedVlp.Backbones.Onnx;
using MedVlp.Modeling;
using MedVlp.Text;
using MedVlp.Weights;
using static TorchSharp.torch;

namespace MedVlp.Benchmarks;

/// <summary>
/// all-MiniLM-L6-v2 (the real pretrained model from scripts/fetch-test-data.sh) on a batch of 32 report sentences:
/// ONNX Runtime (<see cref="OnnxTextBackbone"/>) side by side with MedVlp's TorchSharp <see cref="BertModel"/> holding the
/// same weights (read from the ONNX initializers). Sentences per second = 32 / mean.
/// <para>
/// Two jobs: libgomp's default wait policy (libtorch's OpenMP threads spin at every barrier) and
/// <c>OMP_WAIT_POLICY=PASSIVE</c> (they sleep). On a machine whose cores are busy with other work the spinning threads
/// steal each other's time slices at every one of the forward's ~150 parallel regions: that, not TorchSharp's per-op
/// overhead, made TorchSharp 7-20x slower than ONNX Runtime here (ONNX Runtime's own pool is not affected).
/// <c>dotnet run -c Release --project benchmarks/MedVlp.Benchmarks -- minilm</c> measures both runtimes alternately in one
/// process (faster, for a loaded machine).
/// </para>
/// </summary>
[Config(typeof(WaitPolicyConfig))]
public class MiniLmBenchmarks : IDisposable
{
    private static readonly string[] Reports =
    [
        "small left pleural effusion", "no acute intracranial abnormality", "mild cardiomegaly without edema",
        "diffuse white matter hyperintensities consistent with small vessel disease", "the lungs are clear",
        "moderate right pleural effusion with adjacent atelectasis", "ventricles and sulci are normal in size",
        "no evidence of pneumothorax",
    ];

    private OnnxTextBackbone _onnx = null!;
    private BertModel _bert = null!;
    private Tensor _ids = null!;
    private Tensor _mask = null!;

    /// <summary>Threads for both runtimes (ONNX Runtime intra-op threads and libtorch threads).</summary>
    [Params(2)]
    public int Threads { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var model = TestData.File("minilm/model.onnx");
        _onnx = new OnnxTextBackbone(model, new OnnxBackboneOptions { IntraOpThreads = Threads });
        set_num_threads(Threads);
        _bert = new BertModel(new BertConfig { HiddenSize = 384, NumHiddenLayers = 6, NumAttentionHeads = 12, IntermediateSize = 1536 });
        var weights = OnnxInitializers.Load(model);
        WeightLoader.Load(_bert, weights, new WeightLoadOptions { Layout = "hf-bert" });
        foreach (var w in weights.Values)
        {
            w.Dispose();
        }

        _bert.eval();
        var tokenizer = WordPieceTextTokenizer.FromVocabularyFile(TestData.File("minilm/vocab.txt"));
        var batch = tokenizer.EncodeBatch(Enumerable.Range(0, 32).Select(i => Reports[i % Reports.Length]).ToArray(), 128);
        _ids = tensor(batch.Ids.ToArray(), [batch.BatchSize, batch.SequenceLength]);
        _mask = tensor(batch.AttentionMask.ToArray(), [batch.BatchSize, batch.SequenceLength]);
    }

    [Benchmark(Baseline = true)]
    public float OnnxRuntime()
    {
        using var hidden = _onnx.Forward(_ids, _mask);
        return hidden[0, 0, 0].item<float>();
    }

    [Benchmark]
    public float TorchSharp()
    {
        using var inference = inference_mode(); // frozen and nothing upstream trains
        using var hidden = _bert.forward(_ids, _mask);
        return hidden[0, 0, 0].item<float>();
    }

    [GlobalCleanup]
    public void Dispose()
    {
        _onnx?.Dispose();
        _bert?.Dispose();
        _ids?.Dispose();
        _mask?.Dispose();
        GC.SuppressFinalize(this);
    }
}

/// <summary>The default job and one with <c>OMP_WAIT_POLICY=PASSIVE</c> (set in the benchmark process's environment before libtorch loads).</summary>
internal sealed class WaitPolicyConfig : ManualConfig
{
    public WaitPolicyConfig()
    {
        AddJob(Job.Default.WithId("omp-spin"));
        AddJob(Job.Default.WithEnvironmentVariables(new EnvironmentVariable("OMP_WAIT_POLICY", "PASSIVE")).WithId("omp-passive"));
    }
}
