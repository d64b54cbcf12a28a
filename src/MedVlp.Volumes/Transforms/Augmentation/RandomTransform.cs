namespace MedVlp.Volumes.Transforms;

/// <summary>
/// Base of the augmentations: with probability <see cref="Probability"/> the transform draws its parameters from the
/// <see cref="Random"/> it is given and applies them; otherwise it returns the volume unchanged. The same seed gives the
/// same result on any machine and thread.
/// </summary>
public abstract class RandomTransform : VolumeTransform
{
    /// <summary>The chance, 0..1, that the transform is applied (default 1).</summary>
    public double Probability { get; init; } = 1;

    /// <inheritdoc />
    public override bool IsRandom => true;

    /// <inheritdoc />
    public override void Validate()
    {
        if (!(Probability >= 0 && Probability <= 1))
        {
            throw new ArgumentException($"{GetType().Name}: the probability must be in [0, 1], got {Probability}.");
        }
    }

    /// <inheritdoc />
    protected sealed override Volume ApplyCore(Volume volume, Random random)
    {
        var draw = random.NextDouble();
        return draw < Probability ? ApplyRandom(volume, random) : volume;
    }

    /// <summary>Draws the parameters from <paramref name="random"/> and applies them.</summary>
    protected abstract Volume ApplyRandom(Volume volume, Random random);

    /// <summary>A uniform draw in [<paramref name="low"/>, <paramref name="high"/>).</summary>
    protected static double Uniform(Random random, double low, double high)
    {
        ArgumentNullException.ThrowIfNull(random);
        return low + ((high - low) * random.NextDouble());
    }

    /// <summary>Throws unless <paramref name="low"/> &lt;= <paramref name="high"/> and both are finite.</summary>
    protected void ValidateRange(string what, double low, double high)
    {
        if (!(low <= high) || !double.IsFinite(low) || !double.IsFinite(high))
        {
            throw new ArgumentException($"{GetType().Name}: {what} needs finite low <= high, got [{low}, {high}].");
        }
    }
}
