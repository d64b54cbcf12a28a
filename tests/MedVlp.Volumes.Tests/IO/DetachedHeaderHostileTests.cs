using System.Runtime.InteropServices;
using System.Text;
using MedVlp.Testing;
using MedVlp.Volumes.IO;
using MedVlp.Volumes.IO.Dicom;
using Xunit.Abstractions;

namespace MedVlp.Volumes.Tests.IO;

/// <summary>
/// Malicious MetaImage and NRRD headers that point at files outside their folder (absolute paths, <c>..</c>, symbolic
/// links, LIST and <c>%d</c> patterns), at FIFOs and devices, or skip 2^63-1 bytes: each must end in a
/// <see cref="VolumeFormatException"/> naming the header and the field, without reading the target, without a large
/// allocation (the thread's allocation counter) and without hanging (each read runs under a timeout).
/// </summary>
public sealed partial class DetachedHeaderHostileTests(ITestOutputHelper output)
{
    private const long AllocationBudget = 16 << 20;
    private static readonly TimeSpan HangGuard = TimeSpan.FromSeconds(60);
    private const string Mhd = "ObjectType = Image\nNDims = 3\nBinaryData = True\nElementType = MET_UCHAR\nDimSize = 4 4 1\n";
    private const string Nhdr = "NRRD0004\ntype: uchar\ndimension: 3\nsizes: 4 4 1\nencoding: raw\n";

    public static TheoryData<string, string, string> Cases() => new()
    {
        // case, field, text the problem must contain
        { "mhd-etc-passwd", "ElementDataFile", "outside the header's folder" },
        { "mhd-dotdot", "ElementDataFile", "outside the header's folder" },
        { "mhd-symlink-escape", "ElementDataFile", "through symbolic links" },
        { "mhd-symlinked-folder-escape", "ElementDataFile", "through symbolic links" },
        { "mhd-list-escape", "ElementDataFile", "outside the header's folder" },
        { "mhd-pattern-escape", "ElementDataFile", "outside the header's folder" },
        { "mhd-pattern-absolute", "ElementDataFile", "outside the header's folder" },
        { "mhd-data-is-folder", "ElementDataFile", "is a folder, not a regular file" },
        { "mhd-data-is-fifo", "ElementDataFile", "is a FIFO (named pipe), not a regular file" },
        { "mhd-dev-zero-trusted", "ElementDataFile", "is a character device, not a regular file" },
        { "mhd-headersize-max-local", "HeaderSize", "beyond the end" },
        { "mhd-headersize-max-detached", "HeaderSize", "beyond the end" },
        { "mhd-list-huge", "ElementDataFile", "is LIST" },
        { "nhdr-etc-passwd", "data file", "outside the header's folder" },
        { "nhdr-dotdot", "data file", "outside the header's folder" },
        { "nhdr-symlink-escape", "data file", "through symbolic links" },
        { "nhdr-list-escape", "data file", "outside the header's folder" },
        { "nhdr-pattern-escape", "data file", "outside the header's folder" },
        { "nhdr-dev-zero", "data file", "outside the header's folder" },
        { "nhdr-dev-zero-link-trusted", "data file", "is a character device, not a regular file" },
        { "nhdr-data-is-fifo", "data file", "is a FIFO (named pipe), not a regular file" },
        { "nhdr-byte-skip-max", "byte skip", "beyond the end" },
        { "nrrd-byte-skip-max-attached", "byte skip", "beyond the end" },
        { "nhdr-line-skip-max", "line skip", "asks to skip 9223372036854775807 lines" },
        { "nhdr-line-skip-no-newlines", "line skip", "has only 0" },
        { "nrrd-header-is-fifo", "file type", "is a FIFO (named pipe), not a regular file" },
        { "nii-header-is-fifo", "file type", "is a FIFO (named pipe), not a regular file" },
        { "nii-named-folder", "file type", "is a folder" },
        { "mha-named-folder", "file type", "is a folder" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void FailsCleanlyWithoutReadingOutside(string name, string field, string expected)
    {
        using var tmp = TestData.NewTempFolder();
        var (path, options) = Make(name, tmp);
        var ex = ReadExpectingFailure(path, options, out var allocated);
        Assert.Equal(path, ex.FilePath);
        Assert.Equal(field, ex.Field);
        Assert.Contains(expected, ex.Problem, StringComparison.Ordinal);
        Assert.DoesNotContain("root:", ex.Message, StringComparison.Ordinal); // nothing of /etc/passwd leaks into the message
        Assert.True(allocated < AllocationBudget, $"{name}: allocated {allocated} bytes before failing ({ex.Message})");
        output.WriteLine($"{name}: {ex.Message} ({allocated} bytes allocated)");
    }

    [Fact]
    public void DataInTheHeadersFolderAndSubfoldersIsRead()
    {
        using var tmp = TestData.NewTempFolder();
        var data = Enumerable.Range(0, 16).Select(i => (byte)i).ToArray();
        Directory.CreateDirectory(tmp.File("raw"));
        File.WriteAllBytes(tmp.File("raw/d.raw"), data);
        File.WriteAllBytes(tmp.File("s1.raw"), data[..8]);
        File.WriteAllBytes(tmp.File("s2.raw"), data[8..]);
        File.CreateSymbolicLink(tmp.File("inside-link.raw"), tmp.File("raw/d.raw")); // a link that stays inside is fine
        var mhd = Write(tmp, "a.mhd", Mhd + "ElementDataFile = raw/d.raw\n");
        var nhdr = Write(tmp, "a.nhdr", Nhdr + "data file: ./raw/../inside-link.raw\n");
        var pattern = Write(tmp, "p.nhdr", "NRRD0004\ntype: uchar\ndimension: 3\nsizes: 4 2 2\nencoding: raw\ndata file: s%d.raw 1 2 1 2\n");
        var list = Write(tmp, "l.mhd", "NDims = 3\nElementType = MET_UCHAR\nDimSize = 4 2 2\nElementDataFile = LIST\ns1.raw\ns2.raw\n");
        foreach (var path in new[] { mhd, nhdr, pattern, list })
        {
            var v = VolumeReader.Read(path);
            Assert.Equal(data.Select(b => (float)b).ToArray(), v.Data.ToArray());
        }
    }

    [Fact]
    public void TrustedDataFoldersAllowAbsolutePathsThere()
    {
        using var tmp = TestData.NewTempFolder();
        using var elsewhere = TestData.NewTempFolder();
        var data = Enumerable.Range(0, 16).Select(i => (byte)(i * 3)).ToArray();
        File.WriteAllBytes(elsewhere.File("d.raw"), data);
        var mhd = Write(tmp, "a.mhd", Mhd + $"ElementDataFile = {elsewhere.File("d.raw")}\n");
        var nhdr = Write(tmp, "a.nhdr", Nhdr + $"data file: {elsewhere.File("d.raw")}\n");
        foreach (var path in new[] { mhd, nhdr })
        {
            var refused = Assert.Throws<VolumeFormatException>(() => VolumeReader.Read(path));
            Assert.Contains("VolumeReadOptions.TrustedDataFolders", refused.Problem, StringComparison.Ordinal);
            var v = VolumeReader.Read(path, new VolumeReadOptions { TrustedDataFolders = [elsewhere.Path] });
            Assert.Equal(data.Select(b => (float)b).ToArray(), v.Data.ToArray());
        }
    }

    [Fact]
    public async Task FifoInADicomFolderIsSkippedWithAWarning()
    {
        using var tmp = TestData.NewTempFolder();
        File.Copy(TestData.File("pydicom/CT_small.dcm"), tmp.File("ct.dcm"));
        MakeFifo(tmp.File("zz-pipe"));
        var task = Task.Run(() => DicomSeriesReader.ReadSeries(tmp.Path));
        var finished = await Task.WhenAny(task, Task.Delay(HangGuard)) == task;
        if (!finished)
        {
            Release(tmp.File("zz-pipe"));
        }

        Assert.True(finished, "reading a DICOM folder holding a FIFO hung");
        var result = await task;
        Assert.Equal(128, result.Volume.Shape.X);
        Assert.Contains(result.Warnings, w => w.Contains("zz-pipe", StringComparison.Ordinal) && w.Contains("FIFO", StringComparison.Ordinal));
    }

    [Fact]
    public void DefaultBudgetRefusesAGigavoxelHeaderBeforeAllocating()
    {
        using var tmp = TestData.NewTempFolder();
        var path = Write(tmp, "big.nhdr", "NRRD0004\ntype: uchar\ndimension: 3\nsizes: 1024 1024 1024\nencoding: raw\ndata file: big.raw\n");
        using (var f = File.Create(tmp.File("big.raw")))
        {
            f.SetLength(1L << 30); // a sparse 1 GiB file: the header is truthful, only the budget refuses it
        }

        var ex = ReadExpectingFailure(path, null, out var allocated);
        Assert.Equal("sizes", ex.Field);
        Assert.Contains($"the limit is {ResourceLimits.DefaultMaxVoxels}", ex.Problem, StringComparison.Ordinal);
        Assert.True(allocated < AllocationBudget, $"allocated {allocated} bytes");
        var small = new VolumeReadOptions { Limits = new ResourceLimits { MaxVoxels = 100 } };
        var nii = tmp.File("s.nii");
        MedVlp.Volumes.IO.Nifti.NiftiWriter.Write(Volume.Zeros(new VolumeShape(8, 8, 8)), nii);
        var refused = Assert.Throws<VolumeFormatException>(() => VolumeReader.Read(nii, small));
        Assert.Contains("the limit is 100", refused.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void DecompressedBytesAreBounded()
    {
        using var tmp = TestData.NewTempFolder();
        var path = Write(tmp, "g.nrrd", "NRRD0004\ntype: uchar\ndimension: 3\nsizes: 64 64 64\nencoding: gzip\n\n", TestCompression.Gzip(new byte[64 * 64 * 64]));
        var options = new VolumeReadOptions { Limits = new ResourceLimits { MaxDecompressedBytes = 1000 } };
        var ex = Assert.Throws<VolumeFormatException>(() => VolumeReader.Read(path, options));
        Assert.Contains("ResourceLimits.MaxDecompressedBytes", ex.Problem, StringComparison.Ordinal);
        Assert.Equal(64, VolumeReader.Read(path).Shape.Z); // within the default budget it reads
    }

    private VolumeFormatException ReadExpectingFailure(string path, VolumeReadOptions? options, out long allocated)
    {
        long bytes = 0;
        var task = Task.Factory.StartNew(() =>
        {
            var before = GC.GetAllocatedBytesForCurrentThread();
            try
            {
                VolumeReader.Read(path, options);
                return null;
            }
            catch (VolumeFormatException ex)
            {
                return ex;
            }
            finally
            {
                bytes = GC.GetAllocatedBytesForCurrentThread() - before;
            }
        }, TaskCreationOptions.LongRunning);
        var finished = task.Wait(HangGuard);
        if (!finished)
        {
            foreach (var fifo in Directory.EnumerateFiles(Path.GetDirectoryName(path)!, "*fifo*"))
            {
                Release(fifo);
            }
        }

        Assert.True(finished, $"reading {path} hung");
        allocated = bytes;
        var result = task.Result;
        Assert.True(result is not null, $"{path} was read although it should have been refused");
        output.WriteLine($"  {Path.GetFileName(path)}: done");
        return result!;
    }

    private static (string Path, VolumeReadOptions? Options) Make(string name, TempFolder tmp)
    {
        var sub = tmp.File("sub");
        Directory.CreateDirectory(sub);
        File.WriteAllBytes(tmp.File("secret.raw"), new byte[64]); // outside "sub", where the headers live
        string H(string file, string text) => Write(tmp, "sub/" + file, text);
        switch (name)
        {
            case "mhd-etc-passwd": return (H("a.mhd", Mhd + "ElementDataFile = /etc/passwd\n"), null);
            case "mhd-dotdot": return (H("a.mhd", Mhd + "ElementDataFile = ../secret.raw\n"), null);
            case "mhd-symlink-escape":
                File.CreateSymbolicLink(tmp.File("sub/link.raw"), tmp.File("secret.raw"));
                return (H("a.mhd", Mhd + "ElementDataFile = link.raw\n"), null);
            case "mhd-symlinked-folder-escape":
                Directory.CreateSymbolicLink(tmp.File("sub/up"), tmp.Path);
                return (H("a.mhd", Mhd + "ElementDataFile = up/secret.raw\n"), null);
            case "mhd-list-escape":
                File.WriteAllBytes(tmp.File("sub/ok.raw"), new byte[8]);
                return (H("a.mhd", "NDims = 3\nElementType = MET_UCHAR\nDimSize = 4 2 2\nElementDataFile = LIST\nok.raw\n../secret.raw\n"), null);
            case "mhd-pattern-escape": return (H("a.mhd", Mhd.Replace("4 4 1", "4 4 2", StringComparison.Ordinal) + "ElementDataFile = ../secret%d.raw 1 2 1\n"), null);
            case "mhd-pattern-absolute": return (H("a.mhd", Mhd + "ElementDataFile = /etc/passw%d 1 1 1\n"), null);
            case "mhd-data-is-folder":
                Directory.CreateDirectory(tmp.File("sub/d.raw"));
                return (H("a.mhd", Mhd + "ElementDataFile = d.raw\n"), null);
            case "mhd-data-is-fifo":
                MakeFifo(tmp.File("sub/fifo.raw"));
                return (H("a.mhd", Mhd + "ElementDataFile = fifo.raw\n"), null);
            case "mhd-dev-zero-trusted": return (H("a.mhd", Mhd + "ElementDataFile = /dev/zero\n"), new VolumeReadOptions { TrustedDataFolders = ["/dev"] });
            case "mhd-headersize-max-local": return (H("a.mha", Mhd + "HeaderSize = 9223372036854775807\nElementDataFile = LOCAL\n"), null);
            case "mhd-headersize-max-detached":
                File.WriteAllBytes(tmp.File("sub/d.raw"), new byte[64]);
                return (H("a.mhd", Mhd + "HeaderSize = 9223372036854775807\nElementDataFile = d.raw\n"), null);
            case "mhd-list-huge":
                var huge = H("a.mhd", "NDims = 3\nElementType = MET_UCHAR\nDimSize = 4 4 1\nElementDataFile = LIST\n");
                using (var f = new FileStream(huge, FileMode.Append))
                {
                    f.SetLength(f.Length + (64L << 20)); // 64 MiB of zeros after the header: never read into memory
                }

                return (huge, null);
            case "nhdr-etc-passwd": return (H("a.nhdr", Nhdr + "data file: /etc/passwd\n"), null);
            case "nhdr-dotdot": return (H("a.nhdr", Nhdr + "data file: ../secret.raw\n"), null);
            case "nhdr-symlink-escape":
                File.CreateSymbolicLink(tmp.File("sub/link.raw"), tmp.File("secret.raw"));
                return (H("a.nhdr", Nhdr + "data file: link.raw\n"), null);
            case "nhdr-list-escape":
                File.WriteAllBytes(tmp.File("sub/ok.raw"), new byte[8]);
                return (H("a.nhdr", "NRRD0004\ntype: uchar\ndimension: 3\nsizes: 4 2 2\nencoding: raw\ndata file: LIST\nok.raw\n../secret.raw\n"), null);
            case "nhdr-pattern-escape": return (H("a.nhdr", "NRRD0004\ntype: uchar\ndimension: 3\nsizes: 4 4 2\nencoding: raw\ndata file: ../secret%d.raw 1 2 1\n"), null);
            case "nhdr-dev-zero": return (H("a.nhdr", Nhdr + "line skip: 1\ndata file: /dev/zero\n"), null);
            case "nhdr-dev-zero-link-trusted":
                File.CreateSymbolicLink(tmp.File("sub/zero.raw"), "/dev/zero");
                return (H("a.nhdr", Nhdr + "line skip: 1\ndata file: zero.raw\n"), new VolumeReadOptions { TrustedDataFolders = ["/dev"] });
            case "nhdr-data-is-fifo":
                MakeFifo(tmp.File("sub/fifo.raw"));
                return (H("a.nhdr", Nhdr + "data file: fifo.raw\n"), null);
            case "nhdr-byte-skip-max":
                File.WriteAllBytes(tmp.File("sub/d.raw"), new byte[64]);
                return (H("a.nhdr", Nhdr + "byte skip: 9223372036854775807\ndata file: d.raw\n"), null);
            case "nrrd-byte-skip-max-attached":
                return (Write(tmp, "sub/a.nrrd", Nhdr + "byte skip: 9223372036854775807\n\n", new byte[64]), null);
            case "nhdr-line-skip-max":
                File.WriteAllBytes(tmp.File("sub/d.raw"), new byte[64]);
                return (H("a.nhdr", Nhdr + "line skip: 9223372036854775807\ndata file: d.raw\n"), null);
            case "nhdr-line-skip-no-newlines":
                File.WriteAllBytes(tmp.File("sub/d.raw"), new byte[1 << 20]);
                return (H("a.nhdr", Nhdr + "line skip: 5\ndata file: d.raw\n"), null);
            case "nrrd-header-is-fifo":
                MakeFifo(tmp.File("sub/fifo.nrrd"));
                return (tmp.File("sub/fifo.nrrd"), null);
            case "nii-header-is-fifo":
                MakeFifo(tmp.File("sub/fifo.nii"));
                return (tmp.File("sub/fifo.nii"), null);
            case "nii-named-folder":
                Directory.CreateDirectory(tmp.File("sub/x.nii"));
                return (tmp.File("sub/x.nii"), null);
            case "mha-named-folder":
                Directory.CreateDirectory(tmp.File("sub/x.mha"));
                return (tmp.File("sub/x.mha"), null);
            default: throw new ArgumentOutOfRangeException(nameof(name), name, "no such case");
        }
    }

    private static string Write(TempFolder tmp, string file, string header, byte[]? data = null)
    {
        var path = tmp.File(file);
        File.WriteAllBytes(path, [.. Encoding.ASCII.GetBytes(header), .. data ?? []]);
        return path;
    }

    private static void MakeFifo(string path)
    {
        if (Mkfifo(path, Convert.ToUInt32("644", 8)) != 0)
        {
            throw new IOException($"mkfifo {path} failed (errno {Marshal.GetLastPInvokeError()}).");
        }
    }

    /// <summary>Unblocks a reader stuck opening a FIFO (only after a failure: the fixed readers never open one).</summary>
    private static void Release(string fifo)
    {
        using var writer = new FileStream(fifo, FileMode.Open, FileAccess.Write);
    }

    [LibraryImport("libc", EntryPoint = "mkfifo", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Mkfifo(string path, uint mode);
}
