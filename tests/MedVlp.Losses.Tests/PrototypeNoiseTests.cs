using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Losses.Tests;

/// <summary>
/// The Gumbel noise of <see cref="SentencePrototypeBank"/> cannot match torch's random stream, so it is tested by
/// seeded determinism and by the Gumbel-max property: argmax(l + g) is distributed as softmax(l).
/// </summary>
public sealed class PrototypeNoiseTests
{
    private static SentencePrototypeBank IdentityBank(long? seed, PrototypeNoise noise = PrototypeNoise.Gumbel)
    {
        var bank = new SentencePrototypeBank(new SentencePrototypeBankOptions { Prototypes = 4, Dimension = 4, Seed = seed, Noise = noise, Temperature = 0.9 });
        using var noGrad = no_grad();
        bank.Prototypes.copy_(eye(4));
        return bank;
    }

    [Fact]
    public void SameSeedGivesSameNoiseAndDifferentSeedsDiffer()
    {
        using var scope = NewDisposeScope();
        var x = randn(8, 4);
        using var a = IdentityBank(7);
        using var b = IdentityBank(7);
        using var c = IdentityBank(8);
        var wa = a.call(x).Weights;
        var wb = b.call(x).Weights;
        var wc = c.call(x).Weights;
        Assert.True(wa.eq(wb).all().ToBoolean());
        Assert.False(wa.allclose(wc));

        // A second draw differs from the first; reseeding replays the stream.
        var again = a.call(x).Weights;
        Assert.False(again.allclose(wa));
        a.Reseed(7);
        Assert.True(a.call(x).Weights.eq(wa).all().ToBoolean());
    }

    [Fact]
    public void NoiseFreeModeIsTemperedSoftmaxAndSwitchable()
    {
        using var scope = NewDisposeScope();
        var x = randn(5, 4);
        using var bank = IdentityBank(1);
        var noisy = bank.call(x).Weights;
        bank.Options.Noise = PrototypeNoise.None;
        var clean1 = bank.call(x).Weights;
        var clean2 = bank.call(x).Weights;
        Assert.True(clean1.eq(clean2).all().ToBoolean());
        Assert.True(clean1.allclose((x / 0.9).softmax(-1), rtol: 1e-6, atol: 1e-7));
        Assert.False(noisy.allclose(clean1));
    }

    [Fact]
    public void GumbelArgmaxFollowsSoftmaxOfLogits()
    {
        using var scope = NewDisposeScope();
        const int samples = 40000;
        var logits = tensor(new float[] { 1.5f, 0.2f, -0.7f, 0.9f });
        using var bank = IdentityBank(12345);
        var weights = bank.call(logits.unsqueeze(0).expand(samples, 4).contiguous()).Weights;
        var counts = weights.argmax(-1).bincount(null, 4).to_type(ScalarType.Float32) / samples;
        var expected = logits.softmax(0);
        var observed = counts.data<float>().ToArray();
        var probabilities = expected.data<float>().ToArray();
        for (var k = 0; k < 4; k++)
        {
            // 5 standard errors of a binomial proportion.
            var se = Math.Sqrt(probabilities[k] * (1 - probabilities[k]) / samples);
            Assert.True(Math.Abs(observed[k] - probabilities[k]) < 5 * se, $"prototype {k}: observed {observed[k]}, expected {probabilities[k]}");
        }

        // The weights are soft (hard = false): rows sum to one and are not one-hot.
        Assert.True(weights.sum(-1).allclose(ones(samples), rtol: 1e-5, atol: 1e-5));
        Assert.True(weights.max().ToSingle() < 1f);
    }
}
