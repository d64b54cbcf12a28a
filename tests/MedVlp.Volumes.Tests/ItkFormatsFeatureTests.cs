using System.Buffers.Binary;
using System.Text;
using MedVlp.Testing;
using MedVlp.Volumes.IO;

namespace MedVlp.Volumes.Tests;

/// <summary>
/// MetaImage and NRRD features that the ITK example files do not exercise, on small files built here from the
/// format specifications: the expected geometry is derived by hand from the header written.
/// </summary>
public sealed class ItkFormatsFeatureTests
{
    // 4x3x2 voxels with value = i + 10 j + 100 k (so the layout is visible in any failure).
    private static readonly short[] Values = [.. Enumerable.Range(0, 24).Select(n => (short)((n % 4) + (10 * (n / 4 % 3)) + (100 * (n / 12))))];

    private static byte[] Int16Bytes(bool bigEndian)
    {
        var b = new byte[Values.Length * 2];
        for (var n = 0; n < Values.Length; n++)
        {
            if (bigEndian)
            {
                BinaryPrimitives.WriteInt16BigEndian(b.AsSpan(2 * n), Values[n]);
            }
            else
            {
                BinaryPrimitives.WriteInt16LittleEndian(b.AsSpan(2 * n), Values[n]);
            }
        }

        return b;
    }

    private static void AssertValues(Volume v)
    {
        Assert.Equal(new VolumeShape(4, 3, 2), v.Shape);
        for (var n = 0; n < Values.Length; n++)
        {
            Assert.Equal(Values[n], v.Data.Span[n]);
        }
    }

    private static void WriteWithHeader(string path, string header, byte[] data)
    {
        using var f = File.Create(path);
        f.Write(Encoding.ASCII.GetBytes(header));
        f.Write(data);
    }

    [Fact]
    public void NrrdAttachedGzipBigEndianRas()
    {
        using var tmp = TestData.NewTempFolder();
        var path = tmp.File("a.nrrd");
        WriteWithHeader(path, "NRRD0004\n# comment\ntype: short\ndimension: 3\nspace: right-anterior-superior\nsizes: 4 3 2\n" +
            "space directions: (0,2,0) (-1.5,0,0) (0,0,3)\nkinds: domain domain domain\nendian: big\nencoding: gzip\n" +
            "space origin: (10,-20,30)\nmykey:=some value\n\n", TestCompression.Gzip(Int16Bytes(bigEndian: true)));
        var v = VolumeReader.Read(path);
        AssertValues(v);
        var expected = Affine.FromRowMajor([0, -1.5, 0, 10, 2, 0, 0, -20, 0, 0, 3, 30, 0, 0, 0, 1]);
        NiftiWriterGoldenTests.AssertAffine(expected, v.Affine, 0);
        Assert.Equal(new Spacing(2, 1.5, 3), v.Spacing);
        Assert.Equal("ALS", v.Orientation);
    }

    [Fact]
    public void NrrdDetachedAsciiLpsWithLineSkip()
    {
        using var tmp = TestData.NewTempFolder();
        File.WriteAllText(tmp.File("d.txt"), "first junk line\nsecond junk line\n" + string.Join(" ", Values) + "\n");
        File.WriteAllText(tmp.File("d.nhdr"), "NRRD0005\ntype: int16\ndimension: 3\nspace: LPS\nsizes: 4 3 2\n" +
            "space directions: (1,0,0) (0,1,0) (0,0,2)\nencoding: ascii\nline skip: 2\nspace origin: (5,6,7)\ndata file: d.txt\n");
        var v = VolumeReader.Read(tmp.File("d.nhdr"));
        AssertValues(v);
        NiftiWriterGoldenTests.AssertAffine(Affine.FromRowMajor([-1, 0, 0, -5, 0, -1, 0, -6, 0, 0, 2, 7, 0, 0, 0, 1]), v.Affine, 0);
        Assert.Equal("LPS", v.Orientation);
    }

    [Fact]
    public void NrrdByteSkipMinusOneReadsTheEnd()
    {
        using var tmp = TestData.NewTempFolder();
        File.WriteAllBytes(tmp.File("d.raw"), [.. new byte[100], .. Int16Bytes(bigEndian: false)]);
        File.WriteAllText(tmp.File("d.nhdr"), "NRRD0004\ntype: short\ndimension: 3\nsizes: 4 3 2\nspacings: 2 2 2\nendian: little\nencoding: raw\nbyte skip: -1\ndata file: d.raw\n");
        var v = VolumeReader.Read(tmp.File("d.nhdr"));
        AssertValues(v);
        Assert.Equal(new Spacing(2, 2, 2), v.Spacing);
    }

    [Fact]
    public void NrrdVectorAxisBecomesFrames()
    {
        using var tmp = TestData.NewTempFolder();
        // 2 components interleaved per voxel of a 2x2x1 image: component 0 = n, component 1 = -n.
        var data = new byte[8];
        for (var n = 0; n < 4; n++)
        {
            data[2 * n] = (byte)n;
            data[(2 * n) + 1] = (byte)(100 + n);
        }

        WriteWithHeader(tmp.File("v.nrrd"), "NRRD0004\ntype: uchar\ndimension: 4\nspace: left-posterior-superior\nsizes: 2 2 2 1\n" +
            "space directions: none (1,0,0) (0,1,0) (0,0,1)\nkinds: vector domain domain domain\nencoding: raw\nspace origin: (0,0,0)\n\n", data);
        var v = VolumeReader.Read(tmp.File("v.nrrd"));
        Assert.Equal(new VolumeShape(2, 2, 1), v.Shape);
        Assert.Equal(2, v.Frames);
        Assert.Equal([0f, 1, 2, 3], v.GetFrame(0).ToArray());
        Assert.Equal([100f, 101, 102, 103], v.GetFrame(1).ToArray());
    }

    [Fact]
    public void MhaLocalZlibBigEndianWithPermutedDirections()
    {
        using var tmp = TestData.NewTempFolder();
        var path = tmp.File("z.mha");
        // Row n of TransformMatrix is the direction of axis n: i -> +y, j -> +x, k -> -z (LPS).
        WriteWithHeader(path, "ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = True\nCompressedData = True\n" +
            "TransformMatrix = 0 1 0 1 0 0 0 0 -1\nOffset = 1 2 3\nElementSpacing = 0.5 0.25 4\nDimSize = 4 3 2\nAnatomicalOrientation = RAI\n" +
            "ElementType = MET_SHORT\nElementDataFile = LOCAL\n", TestCompression.Zlib(Int16Bytes(bigEndian: true)));
        var v = VolumeReader.Read(path);
        AssertValues(v);
        // LPS affine columns: i = (0, .5, 0), j = (.25, 0, 0), k = (0, 0, -4); origin (1, 2, 3); RAS negates rows x, y.
        NiftiWriterGoldenTests.AssertAffine(Affine.FromRowMajor([0, -0.25, 0, -1, -0.5, 0, 0, -2, 0, 0, -4, 3, 0, 0, 0, 1]), v.Affine, 0);
        Assert.Equal("RAI", v.Metadata.Properties["AnatomicalOrientation"]);
    }

    [Fact]
    public void MhdListAndPatternOfSliceFiles()
    {
        using var tmp = TestData.NewTempFolder();
        var bytes = Int16Bytes(bigEndian: false);
        File.WriteAllBytes(tmp.File("s01.raw"), bytes[..24]);
        File.WriteAllBytes(tmp.File("s02.raw"), bytes[24..]);
        const string common = "ObjectType = Image\nNDims = 3\nBinaryData = True\nDimSize = 4 3 2\nElementType = MET_SHORT\n";
        File.WriteAllText(tmp.File("list.mhd"), common + "ElementDataFile = LIST 2D\ns01.raw\ns02.raw\n");
        File.WriteAllText(tmp.File("pattern.mhd"), common + "ElementDataFile = s%02d.raw 1 2 1\n");
        AssertValues(VolumeReader.Read(tmp.File("list.mhd")));
        AssertValues(VolumeReader.Read(tmp.File("pattern.mhd")));
    }

    [Fact]
    public void MhdHeaderSizeMinusOneAndAsciiData()
    {
        using var tmp = TestData.NewTempFolder();
        File.WriteAllBytes(tmp.File("h.raw"), [.. new byte[37], .. Int16Bytes(bigEndian: false)]);
        File.WriteAllText(tmp.File("h.mhd"), "NDims = 3\nDimSize = 4 3 2\nHeaderSize = -1\nElementType = MET_SHORT\nElementDataFile = h.raw\n");
        AssertValues(VolumeReader.Read(tmp.File("h.mhd")));
        File.WriteAllText(tmp.File("t.txt"), string.Join("\n", Values));
        File.WriteAllText(tmp.File("t.mhd"), "NDims = 3\nBinaryData = False\nDimSize = 4 3 2\nElementType = MET_SHORT\nElementDataFile = t.txt\n");
        AssertValues(VolumeReader.Read(tmp.File("t.mhd")));
    }

    [Fact]
    public void FormatsAreDetectedFromContentWithoutSuffix()
    {
        using var tmp = TestData.NewTempFolder();
        File.Copy(TestData.File("itk/CorpusCallosumMode0.mha"), tmp.File("mha.bin"));
        File.Copy(TestData.File("nibabel/anatomical.nii"), tmp.File("nii.bin"));
        WriteWithHeader(tmp.File("nrrd.bin"), "NRRD0004\ntype: short\ndimension: 3\nsizes: 4 3 2\nendian: little\nencoding: raw\n\n", Int16Bytes(false));
        Assert.Equal(VolumeFileFormat.MetaImage, VolumeReader.DetectFormat(tmp.File("mha.bin")));
        Assert.Equal(VolumeFileFormat.Nifti, VolumeReader.DetectFormat(tmp.File("nii.bin")));
        Assert.Equal(VolumeFileFormat.Nrrd, VolumeReader.DetectFormat(tmp.File("nrrd.bin")));
        AssertValues(VolumeReader.Read(tmp.File("nrrd.bin")));
        Assert.Equal(VolumeReader.Read(TestData.File("itk/CorpusCallosumMode0.mha")).Data.ToArray(), VolumeReader.Read(tmp.File("mha.bin")).Data.ToArray());
    }

    [Fact]
    public async Task ReadAsyncHonoursCancellation()
    {
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => VolumeReader.ReadAsync(TestData.File("itk/BrainProtonDensity3Slices.mha"), null, cts.Token));
        var v = await VolumeReader.ReadAsync(TestData.File("itk/BrainProtonDensity3Slices.mha"));
        Assert.Equal(new VolumeShape(181, 217, 3), v.Shape);
    }
}
