using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Losses;

/// <summary>Options of <see cref="SumOfGammaNoise"/> (Niepert et al. 2021, I-MLE).</summary>
public sealed class SumOfGammaNoiseOptions
{
    /// <summary>The k of the k-subset the noise is shaped for; a matching picks one column per row, so 1 (then the noise approximates a Gumbel).</summary>
    public double K { get; set; } = 1;

    /// <summary>Temperature tau: the noise scale. Vertex affinities here are cosines in [-1, 1], so the default is 0.1 (I-MLE's default 1 is for logits).</summary>
    public double Tau { get; set; } = 0.1;

    /// <summary>Number of Gamma terms s summed (I-MLE's default 10).</summary>
    public int Terms { get; set; } = 10;

    /// <summary>Seed of the noise generator.</summary>
    public long Seed { get; set; } = 42;
}

/// <summary>
/// Sum-of-Gamma perturbations for perturb-and-MAP (Niepert, Minervini and Franceschi 2021):
/// <c>eps = (tau / k) * (sum_{i=1..s} Gamma(shape 1/k, scale k/i) - log s)</c>, drawn on the CPU from a seeded
/// generator, so a run is reproducible. Owns a native generator: dispose it.
/// </summary>
public sealed class SumOfGammaNoise : IDisposable
{
    private readonly SumOfGammaNoiseOptions options;
    private readonly Generator generator;

    /// <summary>Creates the noise source.</summary>
    /// <param name="options">Options; null for the defaults.</param>
    public SumOfGammaNoise(SumOfGammaNoiseOptions? options = null)
    {
        this.options = options ?? new SumOfGammaNoiseOptions();
        if (!(this.options.K > 0) || !(this.options.Tau >= 0) || this.options.Terms < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(options), "Sum-of-Gamma noise needs K > 0, Tau >= 0 and Terms >= 1.");
        }

        generator = new Generator((ulong)this.options.Seed, device: CPU);
    }

    /// <summary>The options in use.</summary>
    public SumOfGammaNoiseOptions Options => options;

    /// <summary>Draws a noise tensor (float32, CPU) of the given shape.</summary>
    /// <param name="shape">The shape.</param>
    /// <returns>The noise; the caller owns it.</returns>
    public Tensor Sample(params long[] shape)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var k = options.K;
        var concentration = full(shape, 1.0 / k, dtype: ScalarType.Float64);
        var sum = zeros(shape, dtype: ScalarType.Float64);
        for (var i = 1; i <= options.Terms; i++)
        {
            sum.add_(_standard_gamma(concentration, generator).mul_(k / i));
        }

        var eps = sum.sub_(Math.Log(options.Terms)).mul_(options.Tau / k).to(ScalarType.Float32);
        return scope.MoveToOuter(eps);
    }

    /// <summary>Releases the generator.</summary>
    public void Dispose() => generator.Dispose();
}
