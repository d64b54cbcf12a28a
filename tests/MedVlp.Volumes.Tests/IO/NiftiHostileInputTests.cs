using System.Buffers.Binary;
using System.IO.Compression;
using MedVlp.Testing;
using MedVlp.Volumes.IO;

namespace MedVlp.Volumes.Tests.IO;

/// <summary>Damaged and malicious NIfTI files end in a <see cref="VolumeFormatException"/> naming the file and field.</summary>
public sealed class NiftiHostileInputTests
{
    [Fact]
    public void TruncatedGzipFails()
    {
        using var temp = TestData.NewTempFolder();
        var bytes = File.ReadAllBytes(TestData.File("mricron/ch2.nii.gz"));
        var path = temp.File("cut.nii.gz");
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        var ex = Assert.Throws<VolumeFormatException>(() => VolumeReader.Read(path));
        Assert.Contains(path, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TruncatedUncompressedFailsBeforeReading()
    {
        using var temp = TestData.NewTempFolder();
        var bytes = File.ReadAllBytes(TestData.File("nibabel/anatomical.nii"));
        var path = temp.File("cut.nii");
        File.WriteAllBytes(path, bytes[..1000]);
        var ex = Assert.Throws<VolumeFormatException>(() => VolumeReader.Read(path));
        Assert.Equal("voxel data", ex.Field);
        Assert.Contains("truncated", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void NotANiftiFileIsRejected()
    {
        using var temp = TestData.NewTempFolder();
        var path = temp.File("notes.nii");
        File.WriteAllText(path, "this is not a NIfTI file, just text that is long enough to hold a header... " + new string('x', 400));
        var ex = Assert.Throws<VolumeFormatException>(() => VolumeReader.Read(path));
        Assert.Equal("sizeof_hdr", ex.Field);
    }

    [Fact]
    public void AbsurdDimensionsAreRejectedWithoutAllocating()
    {
        using var temp = TestData.NewTempFolder();
        // anatomical.nii is big-endian NIfTI-1: set dim[1..3] to 32767 (3.5e13 bytes of int16).
        var header = File.ReadAllBytes(TestData.File("nibabel/anatomical.nii"))[..352];
        for (var n = 1; n <= 3; n++)
        {
            BinaryPrimitives.WriteInt16BigEndian(header.AsSpan(40 + (2 * n)), short.MaxValue);
        }

        var path = temp.File("huge.nii");
        File.WriteAllBytes(path, header);
        var before = GC.GetAllocatedBytesForCurrentThread();
        var ex = Assert.Throws<VolumeFormatException>(() => VolumeReader.Read(path));
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 10_000_000, "the reader allocated from an unchecked header");
        Assert.Equal("dim", ex.Field);
    }

    [Fact]
    public void GzipBombIsRejectedByTheDeflateRatio()
    {
        using var temp = TestData.NewTempFolder();
        var header = File.ReadAllBytes(TestData.File("nibabel/anatomical.nii"))[..352];
        // 1000^3 int16 = 2 GB claimed (within the voxel limit), but the gzip file is a few kilobytes.
        BinaryPrimitives.WriteInt16BigEndian(header.AsSpan(42), 1000);
        BinaryPrimitives.WriteInt16BigEndian(header.AsSpan(44), 1000);
        BinaryPrimitives.WriteInt16BigEndian(header.AsSpan(46), 1000);
        var path = temp.File("bomb.nii.gz");
        using (var file = File.Create(path))
        using (var gz = new GZipStream(file, CompressionLevel.SmallestSize))
        {
            gz.Write(header);
            gz.Write(new byte[1 << 20]);
        }

        // A generous voxel budget, so that the deflate-ratio check (not the default budget) is what refuses it.
        var ex = Assert.Throws<VolumeFormatException>(() => VolumeReader.Read(path, new VolumeReadOptions { MaxVoxels = Array.MaxLength }));
        Assert.Contains("gzip", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ComplexDataTypeIsAClearError()
    {
        using var temp = TestData.NewTempFolder();
        var bytes = File.ReadAllBytes(TestData.File("nibabel/anatomical.nii"));
        BinaryPrimitives.WriteInt16BigEndian(bytes.AsSpan(70), 32);
        var path = temp.File("complex.nii");
        File.WriteAllBytes(path, bytes);
        var ex = Assert.Throws<VolumeFormatException>(() => VolumeReader.Read(path));
        Assert.Equal("datatype", ex.Field);
        Assert.Contains("complex", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MissingFileIsFileNotFound()
    {
        var ex = Assert.Throws<FileNotFoundException>(() => VolumeReader.Read("/nonexistent/none.nii.gz"));
        Assert.Contains("none.nii.gz", ex.Message, StringComparison.Ordinal);
    }
}
