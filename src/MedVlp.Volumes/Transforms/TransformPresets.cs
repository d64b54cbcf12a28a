namespace MedVlp.Volumes.Transforms;

/// <summary>The preprocessing of the papers MedVlp implements, as named pipelines.</summary>
public static class TransformPresets
{
    /// <summary>The preset names.</summary>
    public static IReadOnlyList<string> Names { get; } = ["medblip", "colipri"];

    /// <summary>
    /// MedBLIP (released code): min-max to [0, 1]; trilinear resize with <c>align_corners=True</c> keeping the aspect ratio so
    /// the longest side is 224 (each side <c>floor(224 n / max n)</c>); zero-pad, centred (<c>floor</c> of the difference
    /// before), to 224^3. Output 224 x 224 x 224 in [0, 1].
    /// </summary>
    public static TransformPipeline MedBlip() => new(
    [
        new MinMaxNormalize { OutputMin = 0, OutputMax = 1 },
        new ResizeLongestSide { Size = 224, AlignCorners = true, Interpolation = Interpolation.Trilinear },
        new CropOrPad { Size = new VolumeShape(224, 224, 224), FillValue = 0, Centering = CropOrPadCentering.ExtraAfter },
    ], "medblip");

    /// <summary>
    /// COLIPRI (third-party description, TorchIO conventions): orient to SAR; resample to 2 mm isotropic (trilinear, outside
    /// filled with the volume's minimum, TorchIO's default); clamp to [-1000, 1000] HU; rescale [-1000, 1000] to [-1, 1];
    /// crop or pad, centred (TorchIO's <c>CropOrPad</c>, padding 0), to 192^3.
    /// </summary>
    public static TransformPipeline Colipri() => new(
    [
        new Reorient("SAR"),
        new ResampleToSpacing(2) { Interpolation = Interpolation.Trilinear, FillWithMinimum = true },
        new Clamp(-1000, 1000),
        new ScaleIntensityRange { InputMin = -1000, InputMax = 1000, OutputMin = -1, OutputMax = 1 },
        new CropOrPad { Size = new VolumeShape(192, 192, 192), FillValue = 0, Centering = CropOrPadCentering.ExtraBefore },
    ], "colipri");

    /// <summary>The preset called <paramref name="name"/> (case-insensitive).</summary>
    /// <exception cref="ArgumentException">There is no such preset.</exception>
    public static TransformPipeline Get(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return name.ToUpperInvariant() switch
        {
            "MEDBLIP" => MedBlip(),
            "COLIPRI" => Colipri(),
            _ => throw new ArgumentException($"Unknown preprocessing preset \"{name}\"; known presets: {string.Join(", ", Names)}.", nameof(name)),
        };
    }
}
