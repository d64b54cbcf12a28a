using BenchmarkDotNet.Attributes;
using MedVlp.Losses;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Benchmarks;

/// <summary>
/// ClipLoss forward + backward on CPU for a 256 x 512-d batch (float32), the same work as
/// benchmarks/reference/clip_loss_torch.py. The libtorch thread count is printed so the PyTorch run can use the same.
/// </summary>
public class ClipLossBenchmarks : IDisposable
{
    private Tensor image = null!;
    private Tensor text = null!;
    private Tensor logitScale = null!;
    private ClipLoss dense = null!;
    private ChunkedClipLoss chunked = null!;

    /// <summary>Rows in the batch.</summary>
    [Params(256)]
    public int Batch { get; set; }

    /// <summary>Embedding width.</summary>
    [Params(512)]
    public int Dimension { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var threads = Environment.GetEnvironmentVariable("MEDVLP_TORCH_THREADS");
        if (int.TryParse(threads, out var n))
        {
            torch.set_num_threads(n);
        }

        Console.WriteLine($"// libtorch threads: {torch.get_num_threads()}");
        random.manual_seed(0);
        image = nn.functional.normalize(randn(Batch, Dimension), dim: -1).requires_grad_(true);
        text = nn.functional.normalize(randn(Batch, Dimension), dim: -1).requires_grad_(true);
        logitScale = tensor(MathF.Log(1 / 0.07f)).requires_grad_(true);
        dense = new ClipLoss();
        chunked = new ChunkedClipLoss(new ClipLossOptions { ChunkSize = 64 });
    }

    [GlobalCleanup]
    public void Dispose()
    {
        GC.SuppressFinalize(this);
        dense.Dispose();
        chunked.Dispose();
        image.Dispose();
        text.Dispose();
        logitScale.Dispose();
    }

    [Benchmark(Baseline = true)]
    public float ForwardBackward() => Step(dense);

    [Benchmark]
    public float ChunkedForwardBackward() => Step(chunked);

    /// <summary>The same operations written directly in TorchSharp (no loss module): isolates the wrapper's overhead.</summary>
    [Benchmark]
    public float RawTorchSharpOps()
    {
        using var scope = NewDisposeScope();
        image.grad?.zero_();
        text.grad?.zero_();
        logitScale.grad?.zero_();
        var logits = logitScale.exp() * image.matmul(text.t());
        var labels = arange(Batch, dtype: ScalarType.Int64);
        var loss = (nn.functional.cross_entropy(logits, labels) + nn.functional.cross_entropy(logits.t(), labels)) / 2;
        loss.backward();
        return loss.ToSingle();
    }

    private float Step(VlpLoss<ContrastiveInput> loss)
    {
        using var scope = NewDisposeScope();
        image.grad?.zero_();
        text.grad?.zero_();
        logitScale.grad?.zero_();
        using var output = loss.call(new ContrastiveInput(image, text, logitScale.exp()));
        output.Total.backward();
        return output.Total.ToSingle();
    }
}
