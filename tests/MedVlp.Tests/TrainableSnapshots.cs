using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Tests;

/// <summary>Copies of a module's trainable parameters, to compare the update of one batch with that of its micro-batches.</summary>
internal static class TrainableSnapshots
{
    /// <summary>A detached copy of every trainable parameter, by name (outside any dispose scope: <see cref="AssertSameAndDispose"/> frees them).</summary>
    public static Dictionary<string, Tensor> Take(nn.Module module) =>
        module.named_parameters().Where(p => p.parameter.requires_grad).ToDictionary(p => p.name, p => p.parameter.detach().clone().DetachFromDisposeScope());

    /// <summary>Asserts both snapshots hold the same parameters within <paramref name="tolerance"/>, then disposes them.</summary>
    public static void AssertSameAndDispose(Dictionary<string, Tensor> whole, Dictionary<string, Tensor> micro, double tolerance)
    {
        try
        {
            Assert.Equal(whole.Keys.Order(), micro.Keys.Order());
            foreach (var (name, value) in whole)
            {
                var difference = (value - micro[name]).abs().max().item<float>();
                Assert.True(difference < tolerance, $"{name} moved differently with two micro-batches: {difference}");
            }
        }
        finally
        {
            foreach (var t in whole.Values.Concat(micro.Values))
            {
                t.Dispose();
            }
        }
    }
}
