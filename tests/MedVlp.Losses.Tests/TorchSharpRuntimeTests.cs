using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Losses.Tests;

/// <summary>Proves the native libtorch loads on this system (the build marks GLIBCXX_3.4.32 weak where needed) and autograd works.</summary>
public sealed class TorchSharpRuntimeTests
{
    [Fact]
    public void TensorOpsAndBackwardRun()
    {
        using var scope = NewDisposeScope();
        var x = tensor(new float[] { 1f, -2f, 3f, 0.5f }, [2, 2], requires_grad: true);
        var y = (x * x).sum() + (x.matmul(x)).sum();
        y.backward();

        // d/dx [sum(x^2)] = 2x; d/dx [sum(x @ x)] = 1 x^T + x^T 1 in matrix form: g[i,j] = sum_k x[j,k] + sum_k x[k,i].
        var xs = new float[,] { { 1f, -2f }, { 3f, 0.5f } };
        var grad = x.grad!.data<float>().ToArray();
        for (var i = 0; i < 2; i++)
        {
            for (var j = 0; j < 2; j++)
            {
                var expected = (2 * xs[i, j]) + (xs[j, 0] + xs[j, 1]) + (xs[0, i] + xs[1, i]);
                Assert.Equal(expected, grad[(i * 2) + j], 5);
            }
        }

        // sum(x^2) = 14.25; x @ x = [[-5, -3], [4.5, -5.75]] sums to -9.25.
        Assert.Equal(5.0f, y.item<float>(), 4);
    }

    [Fact]
    public void LinearLayerTrainsOneStepOnCpu()
    {
        using var scope = NewDisposeScope();
        random.manual_seed(0);
        var layer = nn.Linear(4, 2);
        var optimizer = optim.SGD(layer.parameters(), 0.1);
        var input = randn(8, 4);
        var target = randn(8, 2);
        var before = nn.functional.mse_loss(layer.forward(input), target).item<float>();
        for (var step = 0; step < 20; step++)
        {
            optimizer.zero_grad();
            var loss = nn.functional.mse_loss(layer.forward(input), target);
            loss.backward();
            optimizer.step();
        }

        var after = nn.functional.mse_loss(layer.forward(input), target).item<float>();
        Assert.True(after < before, $"loss did not fall: {before} -> {after}");
    }
}
