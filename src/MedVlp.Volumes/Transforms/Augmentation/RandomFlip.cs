namespace MedVlp.Volumes.Transforms;

/// <summary>Flips each enabled axis independently with probability <see cref="AxisProbability"/> (the affine stays true).</summary>
public sealed class RandomFlip : RandomTransform
{
    /// <summary>Whether i may be flipped (default true).</summary>
    public bool I { get; init; } = true;

    /// <summary>Whether j may be flipped (default true).</summary>
    public bool J { get; init; } = true;

    /// <summary>Whether k may be flipped (default true).</summary>
    public bool K { get; init; } = true;

    /// <summary>The chance that each enabled axis is flipped (default 0.5).</summary>
    public double AxisProbability { get; init; } = 0.5;

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        ValidateRange("the axis probability", 0, AxisProbability);
        if (AxisProbability > 1)
        {
            throw new ArgumentException($"{nameof(RandomFlip)}: the axis probability must be at most 1.");
        }
    }

    /// <inheritdoc />
    protected override Volume ApplyRandom(Volume volume, Random random)
    {
        var fi = random.NextDouble() < AxisProbability && I;
        var fj = random.NextDouble() < AxisProbability && J;
        var fk = random.NextDouble() < AxisProbability && K;
        return Flip.Apply(volume, fi, fj, fk);
    }
}
