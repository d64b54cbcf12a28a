namespace MedVlp.Volumes.Transforms;

/// <summary>Where <see cref="CropOrPad"/> puts the odd voxel when the difference in size is odd.</summary>
public enum CropOrPadCentering
{
    /// <summary>TorchIO's <c>CropOrPad</c>: <c>ceil(d / 2)</c> voxels are cropped or padded before, <c>floor(d / 2)</c> after.</summary>
    ExtraBefore,

    /// <summary>MedBLIP's padding (<c>int((size - n) / 2)</c> before): <c>floor(d / 2)</c> before, <c>ceil(d / 2)</c> after.</summary>
    ExtraAfter,
}

/// <summary>
/// Crops or pads every axis, centred, to <see cref="Size"/> voxels; padded voxels get <see cref="FillValue"/>. The affine
/// moves with the box so every voxel keeps its world position.
/// </summary>
public sealed class CropOrPad : VolumeTransform
{
    /// <summary>The output shape (for example 192 x 192 x 192).</summary>
    public VolumeShape Size { get; init; } = new(1, 1, 1);

    /// <summary>The value of padded voxels (default 0).</summary>
    public double FillValue { get; init; }

    /// <summary>Which side gets the odd voxel (default: before, as TorchIO).</summary>
    public CropOrPadCentering Centering { get; init; } = CropOrPadCentering.ExtraBefore;

    /// <inheritdoc />
    public override void Validate() => ResourceLimits.CheckFixedSize(Size, nameof(CropOrPad));

    /// <summary>The input voxel that becomes output voxel (0, 0, 0) for an input of <paramref name="shape"/>.</summary>
    public VoxelOffset StartFor(VolumeShape shape)
    {
        var start = new int[3];
        for (var a = 0; a < 3; a++)
        {
            var d = shape[a] - Size[a]; // > 0: crop d voxels; < 0: pad -d voxels
            var magnitude = Math.Abs(d);
            var before = Centering == CropOrPadCentering.ExtraBefore ? (magnitude + 1) / 2 : magnitude / 2;
            start[a] = d >= 0 ? before : -before;
        }

        return new VoxelOffset(start[0], start[1], start[2]);
    }

    /// <inheritdoc />
    protected override Volume ApplyCore(Volume volume, Random random) =>
        SpatialCrop.Extract(volume, StartFor(volume.Shape), Size, (float)FillValue);
}
