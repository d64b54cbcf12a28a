namespace MedVlp.Volumes.Transforms;

/// <summary>
/// Reorients to an axis code such as <c>"RAS"</c>, <c>"LPS"</c> or <c>"SAR"</c> by flipping and permuting voxel axes
/// (never resampling), as nibabel's <c>as_reoriented</c> / TorchIO's <c>ToOrientation</c>; the affine stays true.
/// </summary>
public sealed class Reorient : VolumeTransform
{
    /// <summary>The target axis code: one letter of each pair L/R, P/A, I/S (default <c>"RAS"</c>).</summary>
    public string Codes { get; init; } = "RAS";

    /// <summary>Creates the transform to <c>"RAS"</c>.</summary>
    public Reorient()
    {
    }

    /// <summary>Creates the transform to <paramref name="codes"/>.</summary>
    /// <param name="codes">The target axis code.</param>
    public Reorient(string codes) => Codes = codes;

    /// <inheritdoc />
    public override void Validate() => Orientation.Validate(Codes);

    /// <inheritdoc />
    protected override Volume ApplyCore(Volume volume, Random random) => volume.Reorient(Codes);
}
