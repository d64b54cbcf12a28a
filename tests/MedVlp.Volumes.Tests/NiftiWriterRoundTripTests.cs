using MedVlp.Testing;
using MedVlp.Volumes.IO;
using MedVlp.Volumes.IO.Nifti;

namespace MedVlp.Volumes.Tests;

/// <summary>NIfTI write -> read round trips (our reader is itself checked against nibabel on real files).</summary>
public sealed class NiftiWriterRoundTripTests
{
    [Theory]
    [InlineData("nibabel/anatomical.nii", "out.nii.gz", false)]
    [InlineData("nibabel/anatomical.nii", "out.nii", true)]
    [InlineData("nibabel/functional.nii", "out.nii", false)]
    [InlineData("nibabel/functional.nii", "out.nii.gz", true)]
    [InlineData("nibabel/example_nifti2.nii.gz", "out.hdr", true)]
    [InlineData("nibabel/resampled_anat_moved.nii", "out.nii", true)]
    [InlineData("mricron/aal.nii.gz", "out.nii.gz", true)]
    public void RealFilesRoundTrip(string source, string name, bool original)
    {
        var v = VolumeReader.Read(TestData.File(source));
        using var tmp = TestData.NewTempFolder();
        var path = tmp.File(name);
        NiftiWriter.Write(v, path, new NiftiWriteOptions { StorageType = original ? NiftiStorageType.Original : NiftiStorageType.Float32 });
        var back = VolumeReader.Read(path);
        Assert.Equal(v.Shape, back.Shape);
        Assert.Equal(v.FrameShape, back.FrameShape);
        NiftiWriterGoldenTests.AssertAffine(v.Affine, back.Affine, 1e-5);
        Assert.Equal(original ? v.Metadata.SourceDataType : VoxelDataType.Float32, back.Metadata.SourceDataType);
        var a = v.Data.Span;
        var b = back.Data.Span;
        for (var n = 0; n < a.Length; n++)
        {
            var same = (float.IsNaN(a[n]) && float.IsNaN(b[n])) || Math.Abs(a[n] - b[n]) <= 1e-6 * Math.Max(1, Math.Abs(a[n]));
            Assert.True(same, $"voxel {n}: wrote {a[n]}, read {b[n]}");
        }

        if (path.EndsWith(".gz", StringComparison.Ordinal))
        {
            using var f = File.OpenRead(path);
            Assert.Equal(0x1f, f.ReadByte());
            Assert.Equal(0x8b, f.ReadByte());
        }
    }

    [Fact]
    public void WideVolumesAreWrittenAsNifti2()
    {
        var v = new Volume(new float[40000], new VolumeShape(40000, 1, 1));
        using var tmp = TestData.NewTempFolder();
        NiftiWriter.Write(v, tmp.File("w.nii"));
        Assert.Equal(2, NiftiReader.ReadHeader(tmp.File("w.nii")).Version);
        Assert.Throws<ArgumentException>(() => NiftiWriter.Write(v, tmp.File("w1.nii"), new NiftiWriteOptions { Version = 1 }));
    }

    [Fact]
    public void ValuesOutsideTheOriginalTypeAreRefused()
    {
        var v = new Volume([0, 1, 300], new VolumeShape(3, 1, 1), metadata: new VolumeMetadata { SourceDataType = VoxelDataType.UInt8 });
        using var tmp = TestData.NewTempFolder();
        var ex = Assert.Throws<ArgumentException>(() => NiftiWriter.Write(v, tmp.File("u8.nii"), new NiftiWriteOptions { StorageType = NiftiStorageType.Original }));
        Assert.Contains("Voxel 2", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void UnknownSuffixIsRefused()
    {
        using var tmp = TestData.NewTempFolder();
        Assert.Throws<ArgumentException>(() => NiftiWriter.Write(Volume.Zeros(new VolumeShape(2, 2, 2)), tmp.File("x.mha")));
    }

    [Fact]
    public async Task CancelledWriteLeavesNoFile()
    {
        using var tmp = TestData.NewTempFolder();
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();
        var path = tmp.File("c.nii");
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => NiftiWriter.WriteAsync(Volume.Zeros(new VolumeShape(64, 64, 64)), path, null, cts.Token));
        Assert.False(File.Exists(path));
    }
}
