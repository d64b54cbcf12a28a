using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using MedVlp.Volumes;

namespace MedVlp.Data;

/// <summary>
/// An on-disk cache of preprocessed volumes, so later epochs skip decoding and the deterministic part of the pipeline.
/// An entry is keyed by the source path, its size and modification time, and the pipeline's fingerprint, so a changed
/// file or pipeline is never served stale. Entries are written atomically (temporary file, then rename); a damaged entry
/// counts as a miss and is replaced. Safe for concurrent use by many threads and processes.
/// </summary>
/// <remarks>File layout (little-endian): <c>"MVPV"</c>, version (int32 = 1), i, j, k extents, frame-shape rank and
/// extents (int32), 16 affine doubles (row-major), then the float32 voxels.</remarks>
public sealed class PreprocessedVolumeCache
{
    private const int Version = 1;
    private static readonly byte[] Magic = "MVPV"u8.ToArray();

    /// <summary>Creates (if needed) and uses <paramref name="directory"/>.</summary>
    public PreprocessedVolumeCache(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        Directory = System.IO.Path.GetFullPath(directory);
        System.IO.Directory.CreateDirectory(Directory);
    }

    /// <summary>The cache folder.</summary>
    public string Directory { get; }

    /// <summary>The cache file for <paramref name="sourcePath"/> under a pipeline fingerprint.</summary>
    public string PathFor(string sourcePath, string pipelineFingerprint)
    {
        ArgumentNullException.ThrowIfNull(sourcePath);
        ArgumentNullException.ThrowIfNull(pipelineFingerprint);
        var full = System.IO.Path.GetFullPath(sourcePath);
        string stamp;
        if (File.Exists(full))
        {
            var info = new FileInfo(full);
            stamp = $"{info.Length}:{info.LastWriteTimeUtc.Ticks}";
        }
        else
        {
            var info = new DirectoryInfo(full);
            var files = info.Exists ? info.GetFiles() : [];
            stamp = $"dir:{files.Length}:{files.Sum(f => f.Length)}:{(files.Length == 0 ? 0 : files.Max(f => f.LastWriteTimeUtc.Ticks))}";
        }

        var key = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes($"{full}\n{stamp}\n{pipelineFingerprint}")));
        return System.IO.Path.Combine(Directory, key[..2], key + ".mvpv");
    }

    /// <summary>Reads the cached volume, or returns null when there is none (or it is damaged).</summary>
    public Volume? TryRead(string sourcePath, string pipelineFingerprint)
    {
        var path = PathFor(sourcePath, pipelineFingerprint);
        if (!File.Exists(path))
        {
            return null;
        }

        try
        {
            return Read(path);
        }
        catch (Exception ex) when (ex is IOException or InvalidDataException or ArgumentException or UnauthorizedAccessException)
        {
            TryDelete(path);
            return null;
        }
    }

    /// <summary>Stores a preprocessed volume.</summary>
    public void Write(string sourcePath, string pipelineFingerprint, Volume volume)
    {
        ArgumentNullException.ThrowIfNull(volume);
        var path = PathFor(sourcePath, pipelineFingerprint);
        System.IO.Directory.CreateDirectory(System.IO.Path.GetDirectoryName(path)!);
        var temp = path + "." + Guid.NewGuid().ToString("N") + ".tmp";
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                var header = new List<byte>(Magic);
                void Int(int v)
                {
                    Span<byte> b = stackalloc byte[4];
                    BinaryPrimitives.WriteInt32LittleEndian(b, v);
                    header.AddRange(b.ToArray());
                }

                Int(Version);
                Int(volume.Shape.X);
                Int(volume.Shape.Y);
                Int(volume.Shape.Z);
                Int(volume.FrameShape.Count);
                foreach (var f in volume.FrameShape)
                {
                    Int(f);
                }

                foreach (var v in volume.Affine.ToRowMajor())
                {
                    var b = new byte[8];
                    BinaryPrimitives.WriteDoubleLittleEndian(b, v);
                    header.AddRange(b);
                }

                stream.Write(header.ToArray());
                stream.Write(MemoryMarshal.AsBytes(volume.Data.Span));
            }

            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            TryDelete(temp);
        }
    }

    private static Volume Read(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        using var reader = new BinaryReader(stream);
        if (!reader.ReadBytes(4).AsSpan().SequenceEqual(Magic) || reader.ReadInt32() != Version)
        {
            throw new InvalidDataException($"{path} is not a MedVlp cache entry of version {Version}.");
        }

        var shape = new VolumeShape(reader.ReadInt32(), reader.ReadInt32(), reader.ReadInt32());
        shape.Validate();
        var rank = reader.ReadInt32();
        if (rank is < 0 or > 4)
        {
            throw new InvalidDataException($"{path}: bad frame rank {rank}.");
        }

        var frameShape = new int[rank];
        long frames = 1;
        for (var n = 0; n < rank; n++)
        {
            frameShape[n] = reader.ReadInt32();
            frames *= frameShape[n];
        }

        var affine = new double[16];
        for (var n = 0; n < 16; n++)
        {
            affine[n] = reader.ReadDouble();
        }

        var count = shape.VoxelCount * frames;
        if (frames <= 0 || count * 4 != stream.Length - stream.Position)
        {
            throw new InvalidDataException($"{path}: the voxel data has the wrong length.");
        }

        var data = GC.AllocateUninitializedArray<float>((int)count);
        stream.ReadExactly(MemoryMarshal.AsBytes(data.AsSpan()));
        return new Volume(data, shape, Affine.FromRowMajor(affine), frameShape, metadata: new VolumeMetadata { SourcePath = path, Format = "cache" });
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
