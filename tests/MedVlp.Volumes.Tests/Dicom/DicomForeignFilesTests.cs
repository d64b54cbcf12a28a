using MedVlp.Testing;
using MedVlp.Volumes.IO;
using MedVlp.Volumes.IO.Dicom;

namespace MedVlp.Volumes.Tests.Dicom;

/// <summary>
/// A series folder that also holds foreign files (a JPEG-compressed image, a structured report without pixel data, a
/// text file) reads the series it can and lists each skipped file once; DicomReadOptions.Strict makes them an error.
/// </summary>
public sealed class DicomForeignFilesTests
{
    private static (TempFolder Folder, string Jpeg, string Report, string Text) SeriesWithForeignFiles()
    {
        var folder = TestData.NewTempFolder();
        foreach (var f in Directory.GetFiles(TestData.File("pydicom/CT5N")))
        {
            File.Copy(f, folder.File(Path.GetFileName(f)));
        }

        var jpeg = folder.File("zz-jpeg.dcm");
        File.Copy(TestData.File("pydicom/JPEG-lossy.dcm"), jpeg);
        var report = folder.File("report.dcm");
        File.Copy(TestData.File("pydicom/test-SR.dcm"), report);
        var text = folder.File("notes.txt");
        File.WriteAllText(text, "scanned on the old CT, see the paper file\n");
        return (folder, jpeg, report, text);
    }

    [Fact]
    public void TheSeriesIsReadAndEachSkippedFileIsAWarning()
    {
        var (folder, jpeg, report, text) = SeriesWithForeignFiles();
        using (folder)
        {
            var alone = DicomSeriesReader.ReadSeries(TestData.File("pydicom/CT5N"));
            var mixed = DicomSeriesReader.ReadSeries(folder.Path);

            Assert.Equal(alone.Volume.Shape, mixed.Volume.Shape);
            Assert.Equal(alone.Volume.Data.ToArray(), mixed.Volume.Data.ToArray());
            Assert.Equal(alone.Files.Select(Path.GetFileName), mixed.Files.Select(Path.GetFileName));
            Assert.Equal(3, mixed.Warnings.Count(w => w.StartsWith("skipped ", StringComparison.Ordinal)));

            var jpegWarning = Assert.Single(mixed.Warnings, w => w.Contains(jpeg, StringComparison.Ordinal));
            Assert.Equal($"skipped {jpeg}: unsupported transfer syntax 1.2.840.10008.1.2.4.51 (JPEG Extended (Process 2 and 4)); MedVlp decodes uncompressed, deflated and RLE Lossless DICOM.", jpegWarning);
            Assert.Single(mixed.Warnings, w => w.Contains(report, StringComparison.Ordinal) && w.Contains("without pixel data", StringComparison.Ordinal));
            Assert.Single(mixed.Warnings, w => w.Contains(text, StringComparison.Ordinal) && w.Contains("not a DICOM file", StringComparison.Ordinal));
            foreach (var path in new[] { jpeg, report, text })
            {
                Assert.Equal(1, string.Join("\n", mixed.Warnings).Split(path).Length - 1);
            }

            // VolumeReader keeps them in the metadata (medvlp info prints them).
            var volume = VolumeReader.Read(folder.Path);
            Assert.Contains(jpeg, volume.Metadata.Properties["Warnings"], StringComparison.Ordinal);
        }
    }

    [Fact]
    public void StrictMakesForeignFilesAnError()
    {
        var (folder, jpeg, report, text) = SeriesWithForeignFiles();
        using (folder)
        {
            var options = new VolumeReadOptions { Dicom = new DicomReadOptions { Strict = true } };
            var ex = Assert.Throws<VolumeFormatException>(() => DicomSeriesReader.ReadSeries(folder.Path, options));
            Assert.Equal(folder.Path, ex.FilePath);
            Assert.Contains("3 file(s) are not DICOM images MedVlp decodes (DicomReadOptions.Strict)", ex.Message, StringComparison.Ordinal);
            foreach (var path in new[] { jpeg, report, text })
            {
                Assert.Equal(1, ex.Message.Split(path).Length - 1);
            }

            File.Delete(jpeg);
            File.Delete(report);
            File.Delete(text);
            Assert.Empty(DicomSeriesReader.ReadSeries(folder.Path, options).Warnings);
        }
    }

    [Fact]
    public void AnUnsupportedFileGivenAloneStillFails()
    {
        var path = TestData.File("pydicom/JPEG-lossy.dcm");
        var ex = Assert.Throws<VolumeFormatException>(() => DicomSeriesReader.ReadSeries([path]));
        Assert.Equal("TransferSyntaxUID", ex.Field);
        Assert.Equal(1, ex.Message.Split(path).Length - 1);
    }
}
