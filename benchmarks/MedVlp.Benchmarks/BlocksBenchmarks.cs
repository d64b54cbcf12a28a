using BenchmarkDotNet.Attributes;
using MedVlp.Modeling.Backbones;
using MedVlp.Modeling.Blocks;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MedVlp.Benchmarks;

/// <summary>
/// A pre-norm ViT layer (<see cref="TransformerLayer"/>, width 384, 6 heads, MLP 1536, 4 x 197 tokens) forward +
/// backward on CPU, next to the same ops written directly in TorchSharp (the blocks' own overhead) and
/// benchmarks/reference/blocks_torch.py (PyTorch's nn.TransformerEncoderLayer(norm_first=True), the same work);
/// and GPT-2 greedy decoding of 32 tokens with and without the key/value cache.
/// </summary>
public class BlocksBenchmarks : IDisposable
{
    private TransformerLayer layer = null!;
    private Tensor x = null!;
    private Gpt2LMHeadModel lm = null!;
    private Tensor prompt = null!;
    private Dictionary<string, Tensor> p = null!;

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
        layer = new TransformerLayer(new TransformerLayerOptions { Width = 384, Heads = 6, MlpHidden = 1536 });
        p = layer.named_parameters().ToDictionary(e => e.name, e => (Tensor)e.parameter);
        x = randn(4, 197, 384).requires_grad_(true);
        lm = new Gpt2LMHeadModel(new Gpt2Config { VocabSize = 1000, NPositions = 64, NEmbd = 256, NLayer = 4, NHead = 4 });
        lm.eval();
        prompt = randint(0, 1000, [1, 16], ScalarType.Int64);
    }

    [GlobalCleanup]
    public void Dispose()
    {
        GC.SuppressFinalize(this);
        layer.Dispose();
        lm.Dispose();
        x.Dispose();
        prompt.Dispose();
    }

    [Benchmark(Baseline = true)]
    public float TransformerLayerForwardBackward()
    {
        using var scope = NewDisposeScope();
        layer.zero_grad();
        var loss = layer.forward(x).square().mean();
        loss.backward();
        return loss.item<float>();
    }

    [Benchmark]
    public float RawTorchSharpOps()
    {
        using var scope = NewDisposeScope();
        layer.zero_grad();
        var h = F.layer_norm(x, [384], p["norm1.weight"], p["norm1.bias"], 1e-6);
        var qkv = F.linear(h, p["attn.qkv.weight"], p["attn.qkv.bias"]).reshape(4, 197, 3, 6, 64).permute(2, 0, 3, 1, 4);
        var a = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2]).transpose(1, 2).reshape(4, 197, 384);
        var y = x + F.linear(a, p["attn.proj.weight"], p["attn.proj.bias"]);
        var m = F.layer_norm(y, [384], p["norm2.weight"], p["norm2.bias"], 1e-6);
        y = y + F.linear(F.gelu(F.linear(m, p["mlp.fc1.weight"], p["mlp.fc1.bias"])), p["mlp.fc2.weight"], p["mlp.fc2.bias"]);
        var loss = y.square().mean();
        loss.backward();
        return loss.item<float>();
    }

    [Benchmark]
    public long Gpt2Decode32WithCache()
    {
        using var scope = NewDisposeScope();
        return lm.GenerateGreedy(prompt, null, null, 32, endOfText: -1).sum().item<long>();
    }

    [Benchmark]
    public long Gpt2Decode32WithoutCache()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var sequence = prompt;
        for (var step = 0; step < 32; step++)
        {
            using var output = lm.Compute(sequence, null);
            sequence = cat([sequence, output.Logits[.., -1].argmax(-1).unsqueeze(1)], 1);
        }

        return sequence.sum().item<long>();
    }
}
