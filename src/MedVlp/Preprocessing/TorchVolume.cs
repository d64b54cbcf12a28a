using MedVlp.Volumes;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Preprocessing;

/// <summary>
/// A volume held as a TorchSharp tensor (on any device) with its voxel-to-world affine: the device-side counterpart of
/// <see cref="Volume"/>. The tensor has shape <c>[frames, k, j, i]</c> (float32), the C-order view of a volume's buffer.
/// </summary>
/// <remarks>Owns its tensor: dispose it (or move the tensor out with <see cref="Detach"/>).</remarks>
public sealed class TorchVolume : IDisposable
{
    private Tensor? _data;

    /// <summary>Wraps a <c>[frames, k, j, i]</c> float32 tensor (taking ownership) and its affine.</summary>
    /// <param name="data">The voxels; the object takes ownership.</param>
    /// <param name="affine">Voxel (i, j, k) to RAS+ millimetres.</param>
    /// <param name="frameShape">The extents beyond k, as on <see cref="Volume.FrameShape"/>; null for <c>[frames]</c> when frames &gt; 1.</param>
    /// <param name="metadata">Where the volume came from.</param>
    /// <exception cref="ArgumentException">The tensor is not 4-dimensional float32.</exception>
    public TorchVolume(Tensor data, Affine affine, IReadOnlyList<int>? frameShape = null, VolumeMetadata? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(affine);
        if (data.dim() != 4 || data.dtype != ScalarType.Float32)
        {
            throw new ArgumentException($"A TorchVolume needs a [frames, k, j, i] float32 tensor, got {data.dtype} [{string.Join(", ", data.shape)}].", nameof(data));
        }

        _data = data;
        Affine = affine;
        var frames = (int)data.shape[0];
        FrameShape = frameShape is { Count: > 0 } ? [.. frameShape] : frames > 1 ? [frames] : [];
        Metadata = metadata ?? VolumeMetadata.None;
    }

    /// <summary>The voxels, <c>[frames, k, j, i]</c>.</summary>
    public Tensor Data => _data ?? throw new ObjectDisposedException(nameof(TorchVolume));

    /// <summary>The spatial shape (i, j, k).</summary>
    public VolumeShape Shape => new((int)Data.shape[3], (int)Data.shape[2], (int)Data.shape[1]);

    /// <summary>The number of frames.</summary>
    public int Frames => (int)Data.shape[0];

    /// <summary>The extents beyond k.</summary>
    public IReadOnlyList<int> FrameShape { get; }

    /// <summary>Voxel to world.</summary>
    public Affine Affine { get; }

    /// <summary>Where the volume came from.</summary>
    public VolumeMetadata Metadata { get; }

    /// <summary>Copies a volume to <paramref name="device"/> (CPU when null).</summary>
    public static TorchVolume FromVolume(Volume volume, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(volume);
        var s = volume.Shape;
        var t = tensor(volume.Data.ToArray(), [volume.Frames, s.Z, s.Y, s.X], ScalarType.Float32);
        if (device is not null && device.type != DeviceType.CPU)
        {
            var moved = t.to(device);
            t.Dispose();
            t = moved;
        }

        return new TorchVolume(t, volume.Affine, volume.FrameShape, volume.Metadata);
    }

    /// <summary>Copies the voxels back to a CPU <see cref="Volume"/>.</summary>
    public Volume ToVolume()
    {
        using var scope = NewDisposeScope();
        var cpu = Data.detach().cpu().contiguous();
        var data = cpu.data<float>().ToArray();
        return new Volume(data, Shape, Affine, FrameShape, Affine.Zooms, Metadata);
    }

    /// <summary>A new volume over <paramref name="data"/> (owned) with this volume's frames and metadata.</summary>
    public TorchVolume With(Tensor data, Affine affine) => new(data, affine, FrameShape, Metadata);

    /// <summary>Gives up ownership of the tensor and returns it; the object is then disposed.</summary>
    public Tensor Detach()
    {
        var t = Data;
        _data = null;
        return t;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _data?.Dispose();
        _data = null;
    }
}
