using System.Text;
using MedVlp.Volumes.IO.Dicom;
using MedVlp.Volumes.IO.MetaImage;
using MedVlp.Volumes.IO.Nifti;
using MedVlp.Volumes.IO.Nrrd;

namespace MedVlp.Volumes.IO;

/// <summary>
/// The one entry point for reading volumes: detects the format from the path and the file's first bytes.
/// </summary>
public static class VolumeReader
{
    /// <summary>Reads a volume from a file, or from a folder holding a DICOM series.</summary>
    /// <param name="path">The file to read (NIfTI, MetaImage, NRRD or DICOM), or a folder of DICOM files (one series, or the one chosen with <see cref="VolumeReadOptions.SeriesInstanceUid"/>).</param>
    /// <param name="options">Reading options, or <see langword="null"/> for the defaults.</param>
    /// <param name="cancellationToken">Cancels a long read.</param>
    /// <exception cref="FileNotFoundException">Nothing exists at <paramref name="path"/>.</exception>
    /// <exception cref="VolumeFormatException">The file is not in a supported format, or is damaged.</exception>
    public static Volume Read(string path, VolumeReadOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        cancellationToken.ThrowIfCancellationRequested();
        var format = DetectFormat(path);
        return format switch
        {
            VolumeFileFormat.Nifti => NiftiReader.Read(path, options, cancellationToken),
            VolumeFileFormat.MetaImage => MetaImageReader.Read(path, options, cancellationToken),
            VolumeFileFormat.Nrrd => NrrdReader.Read(path, options, cancellationToken),
            VolumeFileFormat.Dicom => DicomSeriesReader.Read(path, options, cancellationToken),
            _ => throw new VolumeFormatException(path, null, "the format is not recognised: expected NIfTI (.nii, .nii.gz, .hdr/.img), MetaImage (.mha, .mhd), NRRD (.nrrd, .nhdr) or DICOM (a file, or a folder holding a series)."),
        };
    }

    /// <summary>Reads a volume on the thread pool; <paramref name="cancellationToken"/> also stops the read between chunks.</summary>
    /// <inheritdoc cref="Read(string, VolumeReadOptions?, CancellationToken)"/>
    public static Task<Volume> ReadAsync(string path, VolumeReadOptions? options = null, CancellationToken cancellationToken = default) =>
        Task.Run(() => Read(path, options, cancellationToken), cancellationToken);

    /// <summary>Detects the format of a file from its name, then from its first bytes.</summary>
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
            if (NiftiReader.HasNiftiExtension(path) || MetaImageReader.HasMetaImageExtension(path) || NrrdReader.HasNrrdExtension(path))
            {
                throw new VolumeFormatException(path, "file type", "is a folder, not a regular file; its name says NIfTI, MetaImage or NRRD. Name a file (or give a DICOM folder without such a suffix).");
            }

            return VolumeFileFormat.Dicom;
        }

        SafeFile.RequireRegular(path);

        if (NiftiReader.HasNiftiExtension(path))
        {
            return VolumeFileFormat.Nifti;
        }

        if (MetaImageReader.HasMetaImageExtension(path))
        {
            return VolumeFileFormat.MetaImage;
        }

        if (NrrdReader.HasNrrdExtension(path))
        {
            return VolumeFileFormat.Nrrd;
        }

        if (path.EndsWith(".dcm", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".dicom", StringComparison.OrdinalIgnoreCase))
        {
            return VolumeFileFormat.Dicom;
        }

        return DetectFromContent(path);
    }

    private static VolumeFileFormat DetectFromContent(string path)
    {
        Span<byte> head = stackalloc byte[512];
        int got;
        using (var f = SafeFile.OpenRead(path, 4096))
        {
            got = f.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        }

        head = head[..got];
        if (DicomParser.HasDicomMagic(head))
        {
            return VolumeFileFormat.Dicom;
        }

        if (head.StartsWith("NRRD000"u8))
        {
            return VolumeFileFormat.Nrrd;
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
                // Not NIfTI; try the text formats.
            }
        }

        if (got >= 2 && head[0] == 0x1f && head[1] == 0x8b)
        {
            return VolumeFileFormat.Nifti; // a gzip file with no known suffix: NIfTI is the only gzip container we read
        }

        var text = Encoding.Latin1.GetString(head);
        var first = text.Split('\n', 2)[0].TrimStart();
        foreach (var key in new[] { "ObjectType", "NDims", "Comment", "ObjectSubType", "TransformType" })
        {
            if (first.StartsWith(key, StringComparison.OrdinalIgnoreCase) && first[key.Length..].TrimStart().StartsWith('='))
            {
                return VolumeFileFormat.MetaImage;
            }
        }

        // DICOM data sets written without the preamble and meta header (group 0008 first).
        return DicomParser.LooksLikeBareDataset(head) ? VolumeFileFormat.Dicom : VolumeFileFormat.Unknown;
    }
}

/// <summary>The volume file formats MedVlp knows.</summary>
public enum VolumeFileFormat
{
    /// <summary>Not recognised.</summary>
    Unknown = 0,
    /// <summary>NIfTI-1 or NIfTI-2 (<c>.nii</c>, <c>.nii.gz</c>, <c>.hdr</c>/<c>.img</c>).</summary>
    Nifti,
    /// <summary>ITK MetaImage (<c>.mha</c>, <c>.mhd</c> + data file).</summary>
    MetaImage,
    /// <summary>NRRD (<c>.nrrd</c>, <c>.nhdr</c> + data file).</summary>
    Nrrd,
    /// <summary>DICOM: a Part-10 file (<c>.dcm</c>, or "DICM" at byte 128), a bare data set, or a folder holding a series.</summary>
    Dicom,
}
