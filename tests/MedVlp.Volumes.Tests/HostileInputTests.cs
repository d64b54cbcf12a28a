using System.Buffers.Binary;
using System.Text;
using MedVlp.Testing;
using MedVlp.Volumes.IO;
using MedVlp.Volumes.IO.Nifti;
using Xunit.Abstractions;

namespace MedVlp.Volumes.Tests;

/// <summary>
/// Damaged and malicious NIfTI, MetaImage and NRRD files: each must end in a <see cref="VolumeFormatException"/> naming
/// the file, before allocating more than the file could justify (checked with the thread's allocation counter).
/// </summary>
public sealed class HostileInputTests(ITestOutputHelper output)
{
    /// <summary>No hostile file here justifies more than this many allocated bytes.</summary>
    private const long AllocationBudget = 16 << 20;

    public static TheoryData<string> Cases() =>
    [
        "nii-empty", "nii-truncated-header", "nii-truncated-data", "nii-absurd-dims", "nii2-terabytes", "nii-negative-dim",
        "nii-dim0-zero", "nii-dim0-nine", "nii-voxoffset-nan", "nii-voxoffset-negative", "nii-voxoffset-inf", "nii-voxoffset-beyond-file",
        "nii-gzip-bomb-header", "nii-gzip-corrupt", "nii-gzip-truncated", "nii-complex", "nii-unknown-datatype", "nii-sform-nan",
        "nii-qform-nan", "nii-not-nifti", "nii2-negative-voxoffset", "nii-frames-overflow",
        "mha-absurd-dims", "mha-truncated", "mha-zlib-bomb", "mha-zlib-corrupt", "mha-missing-data-file", "mha-no-datafile-key",
        "mha-bad-ndims", "mha-bad-type", "mha-zero-spacing", "mha-nan-offset", "mha-headersize-beyond", "mha-binary-garbage",
        "mha-negative-dim", "mha-pattern-huge",
        "nrrd-no-magic", "nrrd-absurd-sizes", "nrrd-block-type", "nrrd-gzip-truncated", "nrrd-gzip-bomb", "nrrd-missing-data-file",
        "nrrd-negative-size", "nrrd-directions-mismatch", "nrrd-nan-direction", "nrrd-line-skip-beyond", "nrrd-truncated-raw",
        "nrrd-ascii-garbage", "nrrd-missing-endian", "nrrd-unclosed-vector",
    ];

    [Theory]
    [MemberData(nameof(Cases))]
    public void FailsCleanlyWithoutLargeAllocation(string name)
    {
        using var tmp = TestData.NewTempFolder();
        var path = Make(name, tmp);
        var before = GC.GetAllocatedBytesForCurrentThread();
        // A generous voxel budget, so that each case meets the check it is about (the default budget is tested apart).
        var ex = Assert.Throws<VolumeFormatException>(() => VolumeReader.Read(path, new VolumeReadOptions { MaxVoxels = Array.MaxLength }));
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.NotNull(ex.FilePath);
        Assert.StartsWith(tmp.Path, ex.FilePath, StringComparison.Ordinal);
        Assert.False(string.IsNullOrWhiteSpace(ex.Problem));
        Assert.True(allocated < AllocationBudget, $"{name}: allocated {allocated} bytes before failing ({ex.Message})");
        if (name.Contains("bomb", StringComparison.Ordinal))
        {
            Assert.Contains("deflate expands at most", ex.Problem, StringComparison.Ordinal);
        }

        output.WriteLine($"{name}: {ex.Field}: {ex.Problem} ({allocated} bytes allocated)");
    }

    private static byte[] ValidNifti(int version = 1, VolumeShape? shape = null, bool gzip = false)
    {
        var v = Volume.Zeros(shape ?? new VolumeShape(8, 8, 8), Affine.FromSpacing(new Spacing(1, 1, 1)));
        using var m = new MemoryStream();
        NiftiWriter.Write(v, m, new NiftiWriteOptions { Version = version, Compress = gzip });
        return m.ToArray();
    }

    private static byte[] WithNifti1(Action<Span<byte>> edit)
    {
        var b = ValidNifti();
        edit(b);
        return b;
    }

    private static string Write(TempFolder tmp, string file, byte[] bytes)
    {
        var path = tmp.File(file);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static string Write(TempFolder tmp, string file, string header, byte[]? data = null) =>
        Write(tmp, file, [.. Encoding.ASCII.GetBytes(header), .. data ?? []]);

    private const string Mha = "ObjectType = Image\nNDims = 3\nBinaryData = True\nElementType = MET_UCHAR\n";
    private const string Nrrd = "NRRD0004\ntype: uchar\ndimension: 3\nencoding: raw\n";

    private static string Make(string name, TempFolder tmp) => name switch
    {
        "nii-empty" => Write(tmp, "e.nii", []),
        "nii-truncated-header" => Write(tmp, "t.nii", ValidNifti()[..200]),
        "nii-truncated-data" => Write(tmp, "t.nii", ValidNifti()[..1000]),
        "nii-absurd-dims" => Write(tmp, "a.nii", WithNifti1(b =>
        {
            for (var n = 1; n <= 3; n++)
            {
                BinaryPrimitives.WriteInt16LittleEndian(b[(40 + (2 * n))..], short.MaxValue);
            }
        })[..400]),
        "nii2-terabytes" => Write(tmp, "tb.nii", Edit(ValidNifti(2), b =>
        {
            BinaryPrimitives.WriteInt64LittleEndian(b[24..], 1 << 20);
            BinaryPrimitives.WriteInt64LittleEndian(b[32..], 1 << 20);
            BinaryPrimitives.WriteInt64LittleEndian(b[40..], 1 << 20);
        })),
        "nii-negative-dim" => Write(tmp, "n.nii", WithNifti1(b => BinaryPrimitives.WriteInt16LittleEndian(b[44..], -5))),
        "nii-dim0-zero" => Write(tmp, "z.nii", WithNifti1(b => BinaryPrimitives.WriteInt16LittleEndian(b[40..], 0))),
        "nii-dim0-nine" => Write(tmp, "z.nii", WithNifti1(b => BinaryPrimitives.WriteInt16LittleEndian(b[40..], 9))),
        "nii-voxoffset-nan" => Write(tmp, "v.nii", WithNifti1(b => BinaryPrimitives.WriteSingleLittleEndian(b[108..], float.NaN))),
        "nii-voxoffset-negative" => Write(tmp, "v.nii", WithNifti1(b => BinaryPrimitives.WriteSingleLittleEndian(b[108..], -352))),
        "nii-voxoffset-inf" => Write(tmp, "v.nii", WithNifti1(b => BinaryPrimitives.WriteSingleLittleEndian(b[108..], float.PositiveInfinity))),
        "nii-voxoffset-beyond-file" => Write(tmp, "v.nii", WithNifti1(b => BinaryPrimitives.WriteSingleLittleEndian(b[108..], 1e9f))),
        "nii-gzip-bomb-header" => Write(tmp, "g.nii.gz", TestCompression.Gzip(WithNifti1(b =>
        {
            for (var n = 1; n <= 3; n++)
            {
                BinaryPrimitives.WriteInt16LittleEndian(b[(40 + (2 * n))..], 1000);
            }
        }))),
        "nii-gzip-corrupt" => Write(tmp, "c.nii.gz", Edit(ValidNifti(gzip: true), b => b[20..^8].Fill(0x55))),
        "nii-gzip-truncated" => Write(tmp, "c.nii.gz", ValidNifti(gzip: true)[..^30]),
        "nii-complex" => Write(tmp, "x.nii", WithNifti1(b => BinaryPrimitives.WriteInt16LittleEndian(b[70..], 32))),
        "nii-unknown-datatype" => Write(tmp, "x.nii", WithNifti1(b => BinaryPrimitives.WriteInt16LittleEndian(b[70..], 12345))),
        "nii-sform-nan" => Write(tmp, "s.nii", WithNifti1(b => BinaryPrimitives.WriteSingleLittleEndian(b[284..], float.NaN))),
        "nii-qform-nan" => Write(tmp, "q.nii", WithNifti1(b =>
        {
            BinaryPrimitives.WriteInt16LittleEndian(b[254..], 0);
            BinaryPrimitives.WriteSingleLittleEndian(b[268..], float.NaN);
        })),
        "nii-not-nifti" => Write(tmp, "r.nii", [.. Enumerable.Range(0, 4000).Select(i => (byte)(i * 7))]),
        "nii2-negative-voxoffset" => Write(tmp, "v2.nii", Edit(ValidNifti(2), b => BinaryPrimitives.WriteInt64LittleEndian(b[168..], -1))),
        "nii-frames-overflow" => Write(tmp, "f.nii", Edit(ValidNifti(2), b =>
        {
            BinaryPrimitives.WriteInt64LittleEndian(b[16..], 7);
            for (var n = 4; n <= 7; n++)
            {
                BinaryPrimitives.WriteInt64LittleEndian(b[(16 + (8 * n))..], long.MaxValue / 3);
            }
        })),

        "mha-absurd-dims" => Write(tmp, "a.mha", Mha + "DimSize = 100000 100000 100000\nElementDataFile = LOCAL\n", new byte[100]),
        "mha-truncated" => Write(tmp, "t.mha", Mha + "DimSize = 64 64 64\nElementDataFile = LOCAL\n", new byte[1000]),
        "mha-zlib-bomb" => Write(tmp, "z.mha", Mha + "CompressedData = True\nDimSize = 1000 1000 100\nElementDataFile = LOCAL\n", TestCompression.Zlib(new byte[1000])),
        "mha-zlib-corrupt" => Write(tmp, "z.mha", Mha + "CompressedData = True\nDimSize = 16 16 16\nElementDataFile = LOCAL\n", Edit(TestCompression.Zlib(new byte[4096]), b => b[2..].Fill(0xAB))),
        "mha-missing-data-file" => Write(tmp, "m.mhd", Mha + "DimSize = 4 4 4\nElementDataFile = nowhere.raw\n"),
        "mha-no-datafile-key" => Write(tmp, "k.mha", Mha + "DimSize = 4 4 4\n"),
        "mha-bad-ndims" => Write(tmp, "n.mha", "NDims = 7\nDimSize = 1 1 1 1 1 1 1\nElementType = MET_UCHAR\nElementDataFile = LOCAL\n", new byte[1]),
        "mha-bad-type" => Write(tmp, "b.mha", "NDims = 3\nDimSize = 1 1 1\nElementType = MET_STRING\nElementDataFile = LOCAL\n", new byte[8]),
        "mha-zero-spacing" => Write(tmp, "s.mha", Mha + "ElementSpacing = 1 0 1\nDimSize = 2 2 2\nElementDataFile = LOCAL\n", new byte[8]),
        "mha-nan-offset" => Write(tmp, "o.mha", Mha + "Offset = 0 nan 0\nDimSize = 2 2 2\nElementDataFile = LOCAL\n", new byte[8]),
        "mha-headersize-beyond" => WriteWithRaw(tmp, "h.mhd", Mha + "HeaderSize = 100000\nDimSize = 2 2 2\nElementDataFile = h.raw\n", "h.raw", new byte[64]),
        "mha-binary-garbage" => Write(tmp, "g.mha", [.. Enumerable.Range(0, 3000).Select(i => (byte)(i % 9 == 0 ? 10 : 200 + (i % 50)))]),
        "mha-negative-dim" => Write(tmp, "n.mha", Mha + "DimSize = 4 -4 4\nElementDataFile = LOCAL\n", new byte[64]),
        "mha-pattern-huge" => Write(tmp, "p.mhd", Mha + "DimSize = 4 4 4\nElementDataFile = s%d.raw 1 99999999999 1\n"),

        "nrrd-no-magic" => Write(tmp, "n.nrrd", "type: uchar\ndimension: 3\n\n", new byte[8]),
        "nrrd-absurd-sizes" => Write(tmp, "a.nrrd", Nrrd + "sizes: 1000000 1000000 1000000\n\n", new byte[8]),
        "nrrd-block-type" => Write(tmp, "b.nrrd", "NRRD0004\ntype: block\nblock size: 4\ndimension: 3\nsizes: 1 1 1\nencoding: raw\n\n", new byte[4]),
        "nrrd-gzip-truncated" => Write(tmp, "g.nrrd", "NRRD0004\ntype: uchar\ndimension: 3\nsizes: 64 64 64\nencoding: gzip\n\n", TestCompression.Gzip(new byte[64 * 64 * 64])[..200]),
        "nrrd-gzip-bomb" => Write(tmp, "g.nrrd", "NRRD0004\ntype: uchar\ndimension: 3\nsizes: 1000 1000 100\nencoding: gzip\n\n", TestCompression.Gzip(new byte[100])),
        "nrrd-missing-data-file" => Write(tmp, "m.nhdr", Nrrd + "sizes: 2 2 2\ndata file: gone.raw\n"),
        "nrrd-negative-size" => Write(tmp, "n.nrrd", Nrrd + "sizes: 2 -2 2\n\n", new byte[8]),
        "nrrd-directions-mismatch" => Write(tmp, "d.nrrd", Nrrd + "sizes: 2 2 2\nspace: RAS\nspace directions: (1,0,0) (0,1,0)\n\n", new byte[8]),
        "nrrd-nan-direction" => Write(tmp, "d.nrrd", Nrrd + "sizes: 2 2 2\nspace: RAS\nspace directions: (1,0,0) (0,nan,0) (0,0,1)\n\n", new byte[8]),
        "nrrd-line-skip-beyond" => WriteWithRaw(tmp, "l.nhdr", Nrrd + "sizes: 2 2 2\nline skip: 50\ndata file: l.raw\n", "l.raw", new byte[8]),
        "nrrd-truncated-raw" => Write(tmp, "t.nrrd", Nrrd + "sizes: 20 20 20\n\n", new byte[100]),
        "nrrd-ascii-garbage" => WriteWithRaw(tmp, "a.nhdr", "NRRD0004\ntype: short\ndimension: 3\nsizes: 2 2 2\nencoding: ascii\ndata file: a.txt\n", "a.txt", Encoding.ASCII.GetBytes("1 2 3 four 5 6 7 8 9 10 11 12")),
        "nrrd-missing-endian" => Write(tmp, "e.nrrd", "NRRD0004\ntype: short\ndimension: 3\nsizes: 2 2 2\nencoding: raw\n\n", new byte[16]),
        "nrrd-unclosed-vector" => Write(tmp, "u.nrrd", Nrrd + "sizes: 2 2 2\nspace: LPS\nspace directions: (1,0,0) (0,1,0) (0,0,1\n\n", new byte[8]),
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, "no such case"),
    };

    private static string WriteWithRaw(TempFolder tmp, string header, string text, string raw, byte[] data)
    {
        File.WriteAllBytes(tmp.File(raw), data);
        return Write(tmp, header, text);
    }

    private static byte[] Edit(byte[] bytes, SpanAction edit)
    {
        edit(bytes);
        return bytes;
    }

    private delegate void SpanAction(Span<byte> bytes);

    [Fact]
    public void MissingFilesAreFileNotFound()
    {
        Assert.Throws<FileNotFoundException>(() => VolumeReader.Read("/nonexistent/volume.nii"));
        Assert.Throws<FileNotFoundException>(() => VolumeReader.Read("/nonexistent/volume.mha"));
    }
}
