using MedVlp.Serialization;
using MedVlp.Testing;
using static TorchSharp.torch;

namespace MedVlp.Tests;

/// <summary>The golden tensors the tests/golden/make_*_golden.py scripts write.</summary>
internal static class GoldenTensors
{
    /// <summary>Loads tests/golden/data/<paramref name="file"/> with every tensor outside any dispose scope, so a test class can
    /// keep it for the whole run (its first caller may be inside a scope).</summary>
    public static Dictionary<string, Tensor> Load(string file)
    {
        var tensors = Safetensors.Load(TestData.Golden(file));
        foreach (var t in tensors.Values)
        {
            t.DetachFromDisposeScope();
        }

        return tensors;
    }
}
