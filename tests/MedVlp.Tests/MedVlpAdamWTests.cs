using MedVlp.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MedVlp.Tests;

/// <summary><see cref="MedVlp.Training.Optimizers.AdamW"/> gives TorchSharp's (PyTorch's single-tensor) AdamW bit for bit and shares its state bytes.</summary>
[Collection(nameof(TorchRandomState))]
public sealed class MedVlpAdamWTests
{
    [Theory]
    [InlineData(1e-6, 0.98)]
    [InlineData(1e-8, 0.999)]
    [InlineData(1e-12, 0.999)] // too small an eps for the raised floor: the plain square root
    [InlineData(1e-8, 0.9999999)] // the first steps' bias correction too small for it, later ones not
    public void StepsEqualTorchSharpAdamWBitForBit(double eps, double beta2)
    {
        using var reference = new Net();
        using var fast = new Net();
        fast.load_state_dict(reference.state_dict());
        using var referenceOptimizer = optim.AdamW(Groups(reference), lr: 1e-2, beta1: 0.9, beta2: beta2, eps: eps);
        using var fastOptimizer = new MedVlp.Training.Optimizers.AdamW(Groups(fast), lr: 1e-2, beta1: 0.9, beta2: beta2, eps: eps);
        for (var step = 0; step < 6; step++)
        {
            var lr = 1e-2 / (step + 1);
            Step(reference, referenceOptimizer, step, lr);
            Step(fast, fastOptimizer, step, lr);
        }

        var expected = reference.state_dict();
        foreach (var (name, value) in fast.state_dict())
        {
            Assert.True(Same(value, expected[name]), $"{name} differs after 6 steps (eps {eps}, beta2 {beta2}).");
        }

        // Rows of the embedding no token used kept zero second moments (the case the fast step takes care of) and still decayed.
        using (var fresh = new Net())
        {
            Assert.False(Same(fast.Embedding.weight!.narrow(0, 50, 10), fresh.Embedding.weight!.narrow(0, 50, 10)));
        }

        // The unused parameter (no gradient) never moved.
        Assert.True(Same(fast.Unused, expected["unused"]));
    }

    [Fact]
    public void StateDictBytesAreTorchSharpAdamWs()
    {
        using var a = new Net();
        using var b = new Net();
        b.load_state_dict(a.state_dict());
        using var fastOptimizer = new MedVlp.Training.Optimizers.AdamW(Groups(a), lr: 1e-2, beta2: 0.98, eps: 1e-6);
        using var plainOptimizer = optim.AdamW(Groups(b), lr: 1e-2, beta2: 0.98, eps: 1e-6);
        for (var step = 0; step < 3; step++)
        {
            Step(a, fastOptimizer, step, 1e-2);
            Step(b, plainOptimizer, step, 1e-2);
        }

        static byte[] Save(OptimizerHelper optimizer)
        {
            using var stream = new MemoryStream();
            using (var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true))
            {
                optimizer.save_state_dict(writer);
            }

            return stream.ToArray();
        }

        var fastBytes = Save(fastOptimizer); // TorchSharp writes the class name first: both are "AdamW"
        Assert.Equal(Save(plainOptimizer), fastBytes);

        // A plain AdamW restored from the fast one's bytes continues with the same update.
        using var c = new Net();
        c.load_state_dict(a.state_dict());
        using var restored = optim.AdamW(Groups(c), lr: 1e-2, beta2: 0.98, eps: 1e-6);
        using (var reader = new BinaryReader(new MemoryStream(fastBytes)))
        {
            restored.load_state_dict(reader);
        }

        Step(a, fastOptimizer, 3, 1e-2);
        Step(c, restored, 3, 1e-2);
        var expected = c.state_dict();
        foreach (var (name, value) in a.state_dict())
        {
            Assert.True(Same(value, expected[name]), $"{name} differs after resuming.");
        }
    }

    /// <summary>Bit-for-bit equality of two float tensors.</summary>
    private static bool Same(Tensor a, Tensor b) =>
        a.shape.SequenceEqual(b.shape) && a.detach().contiguous().data<float>().ToArray().SequenceEqual(b.detach().contiguous().data<float>().ToArray());

    private static AdamW.ParamGroup[] Groups(Net net) =>
    [
        new() { Parameters = [net.Embedding.weight!, net.Linear.weight!, net.Unused], Options = new AdamW.Options { weight_decay = 0.05 } },
        new() { Parameters = [net.Linear.bias!], Options = new AdamW.Options { weight_decay = 0 } },
    ];

    private static void Step(Net net, OptimizerHelper optimizer, int step, double lr)
    {
        foreach (var group in optimizer.ParamGroups)
        {
            group.LearningRate = lr;
        }

        using var scope = NewDisposeScope();
        optimizer.zero_grad();
        var generator = new Generator(100 + (ulong)step);
        var ids = randint(0, 50, [4, 7], dtype: ScalarType.Int64, generator: generator); // rows 50..99 never used
        var target = randn([4, 7, 16], generator: generator);
        var loss = (net.Linear.forward(net.Embedding.forward(ids)) - target).pow(2).mean();
        loss.backward();
        optimizer.step();
    }

    private sealed class Net : nn.Module
    {
#pragma warning disable IDE1006, SA1300 // state-dict names
        private readonly Embedding embedding;
        private readonly Linear linear;
        private readonly Parameter unused;
#pragma warning restore IDE1006, SA1300

        public Net()
            : base("net")
        {
            var generator = new Generator(7);
            embedding = nn.Embedding(100, 16);
            linear = nn.Linear(16, 16);
            unused = new Parameter(ones(3));
            using (no_grad())
            {
                embedding.weight!.copy_(randn([100, 16], generator: generator));
                linear.weight!.copy_(randn([16, 16], generator: generator) * 0.1);
                linear.bias!.copy_(randn([16], generator: generator) * 0.1);
            }

            RegisterComponents();
        }

        public Embedding Embedding => embedding;

        public Linear Linear => linear;

        public Parameter Unused => unused;
    }
}
