using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MedVlp.Losses;

/// <summary>How <see cref="SentencePrototypeBank"/> turns prototype logits into weights.</summary>
public enum PrototypeNoise
{
    /// <summary>Gumbel-softmax: softmax((l + g) / tau) with Gumbel noise g, as in the released code (training and inference).</summary>
    Gumbel,

    /// <summary>Noise-free: softmax(l / tau); deterministic, for inference and reproducible evaluation.</summary>
    None,
}

/// <summary>Options of <see cref="SentencePrototypeBank"/>.</summary>
public sealed class SentencePrototypeBankOptions
{
    /// <summary>The number of prototypes K (PRIOR: 512).</summary>
    public int Prototypes { get; set; } = 512;

    /// <summary>The embedding width D (PRIOR: 768).</summary>
    public int Dimension { get; set; } = 768;

    /// <summary>The Gumbel-softmax temperature tau (PRIOR: 0.9).</summary>
    public double Temperature { get; set; } = 0.9;

    /// <summary>Whether Gumbel noise is added (the released code adds it at inference too).</summary>
    public PrototypeNoise Noise { get; set; } = PrototypeNoise.Gumbel;

    /// <summary>Seed of the bank's own noise generator; null draws from TorchSharp's global generator.</summary>
    public long? Seed { get; set; }
}

/// <summary>What <see cref="SentencePrototypeBank"/> made of a batch of sentence vectors.</summary>
/// <param name="Reconstructed">x~ = w E (... x D), the sentences rebuilt from the prototypes.</param>
/// <param name="Logits">l = x E^T (... x K), plain dot products.</param>
/// <param name="Weights">w (... x K), the (Gumbel-)softmax weights.</param>
public sealed record PrototypeAssignment(Tensor Reconstructed, Tensor Logits, Tensor Weights);

/// <summary>
/// PRIOR's sentence prototype bank: a learnable codebook E (K x D); for sentence vectors x,
/// l = x E^T, w = gumbel_softmax(l, tau, hard = false), x~ = w E. Learned by gradient (no EMA, no commitment loss);
/// train it with <see cref="SentencePrototypeLoss"/> (L1 between x~ and x, weight 10 in PRIOR).
/// </summary>
public sealed class SentencePrototypeBank : nn.Module<Tensor, PrototypeAssignment>
{
#pragma warning disable IDE1006 // PyTorch field name.
    private readonly Parameter prototypes;
#pragma warning restore IDE1006
    private readonly Generator? generator;

    /// <summary>Creates the bank with a N(0, 1) codebook.</summary>
    /// <param name="options">Options; null for PRIOR's defaults.</param>
    public SentencePrototypeBank(SentencePrototypeBankOptions? options = null)
        : base(nameof(SentencePrototypeBank))
    {
        Options = options ?? new SentencePrototypeBankOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(Options.Prototypes, 1, nameof(options));
        ArgumentOutOfRangeException.ThrowIfLessThan(Options.Dimension, 1, nameof(options));
        if (!(Options.Temperature > 0))
        {
            throw new ArgumentOutOfRangeException(nameof(options), Options.Temperature, "The temperature must be positive.");
        }

        prototypes = new Parameter(randn(Options.Prototypes, Options.Dimension));
        generator = Options.Seed is { } seed ? new Generator((ulong)seed) : null;
        RegisterComponents();
    }

    /// <summary>The options (Noise may be switched between calls, e.g. to <see cref="PrototypeNoise.None"/> for inference).</summary>
    public SentencePrototypeBankOptions Options { get; }

    /// <summary>The codebook E (K x D).</summary>
    public Parameter Prototypes => prototypes;

    /// <summary>Restarts the bank's noise generator at <paramref name="seed"/>.</summary>
    /// <param name="seed">The seed.</param>
    public void Reseed(long seed)
    {
        if (generator is null)
        {
            throw new InvalidOperationException("This bank draws from the global generator; set SentencePrototypeBankOptions.Seed to give it its own.");
        }

        generator.manual_seed(seed);
    }

    /// <inheritdoc />
    public override PrototypeAssignment forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.dim() < 1 || input.shape[^1] != Options.Dimension)
        {
            throw new ArgumentException($"Sentence vectors must be (... x {Options.Dimension}) but have shape [{string.Join(", ", input.shape)}].", nameof(input));
        }

        using var scope = NewDisposeScope();
        var logits = input.matmul(prototypes.t());
        Tensor noisy = logits;
        if (Options.Noise == PrototypeNoise.Gumbel)
        {
            // Gumbel(0, 1) = -log(Exponential(1)), as torch.nn.functional.gumbel_softmax draws it.
            var exponential = empty_like(logits).exponential_(1.0, generator);
            noisy = logits - exponential.log();
        }

        var weights = (noisy / Options.Temperature).softmax(-1);
        var reconstructed = weights.matmul(prototypes);
        return new PrototypeAssignment(scope.MoveToOuter(reconstructed), scope.MoveToOuter(logits), scope.MoveToOuter(weights));
    }
}

/// <summary>Input of <see cref="SentencePrototypeLoss"/>.</summary>
/// <param name="Sentences">The sentence vectors x (... x D).</param>
/// <param name="Reconstructed">Their reconstruction x~ from <see cref="SentencePrototypeBank"/>.</param>
public sealed record PrototypeLossInput(Tensor Sentences, Tensor Reconstructed);

/// <summary>
/// PRIOR's prototype loss L_proto = mean |x~ - x| (L1; PRIOR weights it by 10 in the total). Gradients reach both the
/// codebook (through x~) and the sentence encoder.
/// </summary>
public sealed class SentencePrototypeLoss : VlpLoss<PrototypeLossInput>
{
    /// <summary>Creates the loss.</summary>
    public SentencePrototypeLoss()
        : base(nameof(SentencePrototypeLoss))
    {
    }

    /// <inheritdoc />
    protected override LossOutput ComputeLoss(PrototypeLossInput input)
    {
        Check.SameShape(input.Sentences, nameof(input.Sentences), input.Reconstructed, nameof(input.Reconstructed));
        return new LossOutput(F.l1_loss(input.Reconstructed, input.Sentences));
    }
}
