using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MedVlp.Tests.Architectures;

/// <summary>Checks of <see cref="MedVlp.Training.FrozenBatchNormStatistics"/> as an objective uses it.</summary>
internal static class FrozenNormAssert
{
    /// <summary>The 2D batch-norm layers of an image encoder (at least one).</summary>
    public static BatchNorm2d[] Norms(nn.Module encoder)
    {
        var norms = encoder.named_modules().Select(m => m.module).OfType<BatchNorm2d>().ToArray();
        Assert.NotEmpty(norms);
        return norms;
    }

    /// <summary>After some training steps from initialisation: frozen, the running statistics are still the initial
    /// ones (mean 0, variance 1) and the layers stay in eval mode; either way, the scale and shift train.</summary>
    public static void AfterTraining(BatchNorm2d[] norms, bool frozen)
    {
        Assert.Equal(frozen, norms.All(n => n.running_mean!.eq(0).all().item<bool>() && n.running_var!.eq(1).all().item<bool>()));
        Assert.Equal(frozen, norms.All(n => !n.training));
        Assert.Contains(norms, n => !n.weight!.eq(1).all().item<bool>());
    }
}
