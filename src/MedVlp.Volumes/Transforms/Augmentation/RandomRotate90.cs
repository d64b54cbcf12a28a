namespace MedVlp.Volumes.Transforms;

/// <summary>Rotates by 1..<see cref="MaxTurns"/> quarter turns (uniform) in the plane (<see cref="First"/>, <see cref="Second"/>), as MONAI's <c>RandRotate90</c>.</summary>
public sealed class RandomRotate90 : RandomTransform
{
    /// <summary>The largest number of quarter turns, 1..3 (default 3).</summary>
    public int MaxTurns { get; init; } = 3;

    /// <summary>The first axis of the plane (default 0).</summary>
    public int First { get; init; }

    /// <summary>The second axis of the plane (default 1).</summary>
    public int Second { get; init; } = 1;

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        new Rotate90 { First = First, Second = Second }.Validate();
        if (MaxTurns is < 1 or > 3)
        {
            throw new ArgumentException($"{nameof(RandomRotate90)}: MaxTurns must be 1..3, got {MaxTurns}.");
        }
    }

    /// <inheritdoc />
    protected override Volume ApplyRandom(Volume volume, Random random) =>
        Rotate90.Apply(volume, random.Next(MaxTurns) + 1, First, Second);
}
