namespace MedVlp.Volumes.Transforms;

/// <summary>
/// Repeats a single-frame (grey) image or volume into <see cref="Channels"/> identical frames, the way a grey X-ray is fed
/// to an RGB encoder (torchvision's ResNet-50 and the weights released for it). A volume that already has that many
/// frames is returned unchanged.
/// </summary>
public sealed class RepeatChannels : VolumeTransform
{
    /// <summary>The number of output channels (default 3).</summary>
    public int Channels { get; init; } = 3;

    /// <inheritdoc />
    public override void Validate()
    {
        if (Channels is < 1 or > 64)
        {
            throw new ArgumentException($"RepeatChannels: channels must be in [1, 64], got {Channels}.");
        }
    }

    /// <inheritdoc />
    protected override Volume ApplyCore(Volume volume, Random random)
    {
        if (volume.Frames == Channels)
        {
            return volume;
        }

        if (volume.Frames != 1)
        {
            throw new VolumeFormatException(volume.Metadata.SourcePath ?? "volume", "frames",
                $"RepeatChannels: expected a single-frame image to repeat into {Channels} channels, got {volume.Frames} frames.");
        }

        var per = (int)volume.VoxelsPerFrame;
        var data = GC.AllocateUninitializedArray<float>(checked(per * Channels));
        for (var c = 0; c < Channels; c++)
        {
            volume.Buffer.AsSpan(0, per).CopyTo(data.AsSpan(c * per, per));
        }

        return new Volume(data, volume.Shape, volume.Affine, [Channels], volume.Spacing, volume.Metadata);
    }
}
