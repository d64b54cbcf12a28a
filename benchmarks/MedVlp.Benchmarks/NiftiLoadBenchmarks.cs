using BenchmarkDotNet.Attributes;
using MedVlp.Volumes;
using MedVlp.Volumes.IO;

namespace MedVlp.Benchmarks;

/// <summary>Loading gzipped NIfTI volumes to float32 voxels.</summary>
[MemoryDiagnoser]
public class NiftiLoadBenchmarks
{
    private string _path = "";

    /// <summary>The file under test, relative to the test data folder.</summary>
    [Params("mricron/ch2.nii.gz", "mricron/ch2better.nii.gz")]
    public string File { get; set; } = "";

    [GlobalSetup]
    public void Setup() => _path = TestData.File(File);

    [Benchmark]
    public Volume Read() => VolumeReader.Read(_path);
}
