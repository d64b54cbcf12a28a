using MedVlp.Volumes;
using MedVlp.Volumes.IO;
using SkiaSharp;

namespace MedVlp.Data;

/// <summary>
/// Reads PNG and JPEG files (X-rays and photographs exported from a PACS, the usual form of 2D training data) as 2D
/// images: a <see cref="Volume"/> one voxel thick along k, with one frame for a grey image and three (R, G, B) for a
/// colour one, values as stored (0..255). Decoding is SkiaSharp's (Google's Skia; MIT licensed, already MedVlp's
/// plotting dependency). A PNG or JPEG has no patient geometry: pixel (column i, row j) is voxel (i, j, 0) of an
/// identity affine (1 mm pixels); use DICOM (CR/DX) when the geometry matters.
/// </summary>
public static class ImageFileReader
{
    /// <summary>Whether <paramref name="path"/> names a PNG or JPEG file by its extension.</summary>
    public static bool IsImageFile(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var ext = Path.GetExtension(path).ToLowerInvariant();
        return ext is ".png" or ".jpg" or ".jpeg";
    }

    /// <summary>Reads a PNG or JPEG file.</summary>
    /// <param name="path">The file.</param>
    /// <param name="limits">Largest image accepted (its pixels count against <see cref="ResourceLimits.MaxVoxels"/>); null for the defaults.</param>
    /// <exception cref="VolumeFormatException">The file is not a decodable PNG or JPEG, or it is larger than the limits allow.</exception>
    public static Volume Read(string path, ResourceLimits? limits = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        limits ??= ResourceLimits.Default;
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"The image {path} does not exist.", path);
        }

        using var stream = File.OpenRead(path);
        using var codec = SKCodec.Create(stream, out var result)
            ?? throw new VolumeFormatException(path, "image", $"not a PNG or JPEG file SkiaSharp can decode ({result})");
        var info = codec.Info;
        var format = codec.EncodedFormat;
        if (format is not (SKEncodedImageFormat.Png or SKEncodedImageFormat.Jpeg))
        {
            throw new VolumeFormatException(path, "image", $"expected a PNG or JPEG file, found {format}");
        }

        if (info.Width < 1 || info.Height < 1 || (long)info.Width * info.Height > limits.MaxVoxels)
        {
            throw new VolumeFormatException(path, "image size", $"{info.Width} x {info.Height} pixels is empty or above the limit of {limits.MaxVoxels} pixels");
        }

        var grey = info.ColorType == SKColorType.Gray8;
        var target = new SKImageInfo(info.Width, info.Height, grey ? SKColorType.Gray8 : SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var bytes = new byte[target.BytesSize64];
        var handle = System.Runtime.InteropServices.GCHandle.Alloc(bytes, System.Runtime.InteropServices.GCHandleType.Pinned);
        try
        {
            var decoded = codec.GetPixels(target, handle.AddrOfPinnedObject());
            if (decoded != SKCodecResult.Success)
            {
                // IncompleteInput included: a truncated file would otherwise come back with zero-filled rows.
                throw new VolumeFormatException(path, "pixels", $"SkiaSharp could not decode the {format} data ({decoded}); is the file truncated?");
            }
        }
        finally
        {
            handle.Free();
        }

        int w = info.Width, h = info.Height, per = w * h, channels = grey ? 1 : 3;
        var data = new float[per * channels];
        for (var y = 0; y < h; y++)
        {
            for (var x = 0; x < w; x++)
            {
                if (grey)
                {
                    data[(y * w) + x] = bytes[(y * target.RowBytes) + x];
                    continue;
                }

                var p = (y * target.RowBytes) + (4 * x);
                for (var c = 0; c < 3; c++)
                {
                    data[(c * per) + (y * w) + x] = bytes[p + c];
                }
            }
        }

        var metadata = new VolumeMetadata { SourcePath = path, Format = format == SKEncodedImageFormat.Png ? "png" : "jpeg", SourceDataType = VoxelDataType.UInt8 };
        return new Volume(data, new VolumeShape(w, h, 1), Affine.Identity, grey ? null : [3], null, metadata);
    }

    /// <summary>Reads a PNG or JPEG file with <see cref="Read"/>, and anything else (NIfTI, DICOM files and series folders,
    /// MetaImage, NRRD) with <see cref="VolumeReader"/>: the reader of manifests that mix 2D and 3D data.</summary>
    public static Volume ReadAny(string path, CancellationToken cancellationToken = default) =>
        IsImageFile(path) ? Read(path) : VolumeReader.Read(path, cancellationToken: cancellationToken);
}
