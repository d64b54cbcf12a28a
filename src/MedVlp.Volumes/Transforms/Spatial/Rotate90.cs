namespace MedVlp.Volumes.Transforms;

/// <summary>
/// Rotates the voxel array by <see cref="Turns"/> quarter turns in the plane of two axes, as NumPy's
/// <c>rot90(array, turns, axes=(First, Second))</c> (a quarter turn goes from <see cref="First"/> toward
/// <see cref="Second"/>). The affine is updated so every voxel keeps its world position.
/// </summary>
public sealed class Rotate90 : VolumeTransform
{
    /// <summary>The number of quarter turns (any integer; taken modulo 4).</summary>
    public int Turns { get; init; } = 1;

    /// <summary>The first axis of the plane (default 0, i).</summary>
    public int First { get; init; }

    /// <summary>The second axis of the plane (default 1, j).</summary>
    public int Second { get; init; } = 1;

    /// <inheritdoc />
    public override void Validate()
    {
        if ((uint)First > 2 || (uint)Second > 2 || First == Second)
        {
            throw new ArgumentException($"{nameof(Rotate90)}: the plane needs two different axes among 0, 1, 2, got ({First}, {Second}).");
        }
    }

    /// <inheritdoc />
    protected override Volume ApplyCore(Volume volume, Random random) => Apply(volume, Turns, First, Second);

    internal static Volume Apply(Volume volume, int turns, int first, int second)
    {
        var t = ((turns % 4) + 4) % 4;
        var transform = new (int NewAxis, int Flip)[] { (0, 1), (1, 1), (2, 1) };
        switch (t)
        {
            case 1: // numpy: transpose(flip(m, second)) -> old second axis, flipped, moves to first
                transform[first] = (second, 1);
                transform[second] = (first, -1);
                break;
            case 2:
                transform[first] = (first, -1);
                transform[second] = (second, -1);
                break;
            case 3: // numpy: flip(transpose(m), second) -> old first axis, flipped, moves to second
                transform[first] = (second, -1);
                transform[second] = (first, 1);
                break;
            default:
                return volume;
        }

        return Reorientation.Apply(volume, transform);
    }
}
