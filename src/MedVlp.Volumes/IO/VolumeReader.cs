using MedVlp.Volumes.IO.Dicom;
using MedVlp.Volumes.IO.Nifti;

namespace MedVlp.Volumes.IO;

/// <summary>
/// The one entry point for reading volumes: detects the format from the path and the file's first bytes.
/// </summary>
public static class VolumeReader
{
    /// <summary>Reads a volume from a file, or from a folder holding one DICOM series.</summary>
    /// <param name="path">The file to read (NIfTI or DICOM), or a folder of DICOM files (one series, or the one chosen in <see cref="VolumeReadOptions.Dicom"/>).</param>
    /// <param name="options">Reading options, or <see langword="null"/> for the defaults.</param>
    /// <param name="cancellationToken">Cancels a long read.</param>
    /// <exception cref="FileNotFoundException">Nothing exists at <paramref name="path"/>.</exception>
    /// <exception cref="VolumeFormatException">The file is not in a supported format, or is damaged.</exception>
    public static Volume Read(string path, VolumeReadOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var format = DetectFormat(path);
        return format switch
        {
            VolumeFileFormat.Nifti => NiftiReader.Read(path, options, cancellationToken),
            VolumeFileFormat.Dicom => DicomSeriesReader.Read(path, options, cancellationToken),
            _ => throw new VolumeFormatException(path, null, "the format is not recognised: expected NIfTI (.nii, .nii.gz, .hdr/.img) or DICOM (a file, or a folder holding a series)."),
        };
    }

    /// <summary>Reads a volume on the thread pool.</summary>
    public static Task<Volume> ReadAsync(string path, VolumeReadOptions? options = null, CancellationToken cancellationToken = default) =>
        Task.Run(() => Read(path, options, cancellationToken), cancellationToken);

    /// <summary>Detects the format of a file from its name and first bytes.</summary>
    /// <exception cref="FileNotFoundException">Nothing exists at <paramref name="path"/>.</exception>
    public static VolumeFileFormat DetectFormat(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path) && !Directory.Exists(path))
        {
            throw new FileNotFoundException($"{path}: no such file or folder.", path);
        }

        if (Directory.Exists(path))
        {
            return VolumeFileFormat.Dicom;
        }

        if (NiftiReader.HasNiftiExtension(path))
        {
            return VolumeFileFormat.Nifti;
        }

        if (path.EndsWith(".dcm", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".dicom", StringComparison.OrdinalIgnoreCase))
        {
            return VolumeFileFormat.Dicom;
        }

        Span<byte> head = stackalloc byte[132];
        int got;
        using (var f = File.OpenRead(path))
        {
            got = f.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        }

        if (got >= 4)
        {
            try
            {
                NiftiHeader.DetectVersion(head, path);
                return VolumeFileFormat.Nifti;
            }
            catch (VolumeFormatException)
            {
                // Not NIfTI; fall through.
            }
        }

        if (DicomParser.HasDicomMagic(head[..got]) || DicomParser.LooksLikeBareDataset(head[..got]))
        {
            return VolumeFileFormat.Dicom;
        }

        return VolumeFileFormat.Unknown;
    }
}

/// <summary>The volume file formats MedVlp knows.</summary>
public enum VolumeFileFormat
{
    /// <summary>Not recognised.</summary>
    Unknown = 0,
    /// <summary>NIfTI-1 or NIfTI-2 (<c>.nii</c>, <c>.nii.gz</c>, <c>.hdr</c>/<c>.img</c>).</summary>
    Nifti,
    /// <summary>DICOM: a Part-10 file (<c>.dcm</c> or "DICM" at byte 128), a bare data set, or a folder holding a series.</summary>
    Dicom,
}
