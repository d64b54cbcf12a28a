using System.Runtime.InteropServices;
using MedVlp.Testing;
using MedVlp.Volumes.IO;
using MedVlp.Volumes.IO.Nifti;
using MedVlp.Volumes.Transforms;

namespace MedVlp.Volumes.Tests.Transforms;

/// <summary>
/// Hostile preprocessing: pipeline files asking for huge outputs, steps whose output size overflows or exceeds the budget,
/// and pipeline files that are not regular files. Each ends in a <see cref="VolumeFormatException"/> naming the file (the
/// pipeline's or the volume's), the field or step and the limit, before anything large is allocated.
/// </summary>
public sealed partial class PipelineHostileTests
{
    private const long AllocationBudget = 16 << 20;

    private static string Pipeline(params string[] steps) =>
        $$"""{"format": "medvlp.transform_pipeline", "version": 1, "transforms": [{{string.Join(", ", steps)}}]}""";

    [Theory]
    [InlineData("""{"type": "crop_or_pad", "size": {"x": 1000, "y": 1000, "z": 1000}}""", "crop_or_pad")]
    [InlineData("""{"type": "resample_to_shape", "shape": {"x": 1000, "y": 1000, "z": 1000}}""", "resample_to_shape")]
    [InlineData("""{"type": "spatial_crop", "size": {"x": 2147483647, "y": 2147483647, "z": 2147483647}}""", "spatial_crop")]
    [InlineData("""{"type": "random_crop", "size": {"x": 100000, "y": 100000, "z": 100000}}""", "random_crop")]
    public void AFileAskingForAHugeOutputIsRefusedWhenRead(string step, string type)
    {
        using var tmp = TestData.NewTempFolder();
        var path = tmp.File("preprocessing.json");
        File.WriteAllText(path, Pipeline("""{"type": "min_max"}""", step));
        var before = GC.GetAllocatedBytesForCurrentThread();
        var ex = Assert.Throws<VolumeFormatException>(() => TransformPipeline.Load(path));
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(path, ex.FilePath);
        Assert.Equal($"transforms[1] (type \"{type}\")", ex.Field);
        Assert.Contains("ResourceLimits.MaxPreprocessedVoxels", ex.Problem, StringComparison.Ordinal);
        Assert.True(allocated < AllocationBudget, $"allocated {allocated} bytes");
    }

    [Theory]
    [InlineData("""{"type": "resample_to_spacing", "spacing": {"x": 0.0001, "y": 0.0001, "z": 0.0001}}""", "resample_to_spacing")]
    [InlineData("""{"type": "resample_to_spacing", "spacing": {"x": 1e-300, "y": 1, "z": 1}}""", "resample_to_spacing")]
    [InlineData("""{"type": "resize_longest_side", "size": 2000000000}""", "resize_longest_side")]
    [InlineData("""{"type": "crop_foreground", "margin": 1000000}""", "crop_foreground")]
    public void AStepWhoseOutputIsTooLargeNamesTheVolumeTheStepAndThePipeline(string step, string type)
    {
        using var tmp = TestData.NewTempFolder();
        var pipelinePath = tmp.File("preprocessing.json");
        File.WriteAllText(pipelinePath, Pipeline("""{"type": "reorient", "codes": "RAS"}""", step));
        var pipeline = TransformPipeline.Load(pipelinePath);
        var volumePath = tmp.File("v.nii");
        var data = new float[16 * 16 * 16];
        data[100] = 1; // a foreground voxel for crop_foreground
        NiftiWriter.Write(new Volume(data, new VolumeShape(16, 16, 16), Affine.FromSpacing(new Spacing(1, 1, 1))), volumePath);
        var volume = VolumeReader.Read(volumePath);
        var before = GC.GetAllocatedBytesForCurrentThread();
        var ex = Assert.Throws<VolumeFormatException>(() => pipeline.Apply(volume));
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(volumePath, ex.FilePath);
        Assert.Equal($"preprocessing step 1 ({type} in {pipelinePath})", ex.Field);
        Assert.Contains("ResourceLimits.MaxPreprocessedVoxels", ex.Problem, StringComparison.Ordinal);
        Assert.True(allocated < AllocationBudget, $"allocated {allocated} bytes");
    }

    [Fact]
    public void HugeBlurKernelsAreRefusedWhenRead()
    {
        var ex = Assert.Throws<VolumeFormatException>(() => TransformPipeline.FromJson(Pipeline("""{"type": "gaussian_blur", "sigma_i": 1e12}""")));
        Assert.Equal("transforms[0] (type \"gaussian_blur\")", ex.Field);
        Assert.Contains("kernel radius", ex.Problem, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"format": "medvlp.transform_pipeline", "version": "1", "transforms": []}""", "version")]
    [InlineData("""{"format": 7, "version": 1, "transforms": []}""", "format")]
    [InlineData("""{"format": "medvlp.transform_pipeline", "version": 1, "name": [1], "transforms": []}""", "name")]
    [InlineData("""{"format": "medvlp.transform_pipeline", "version": 1e40, "transforms": []}""", "version")]
    [InlineData("""{"format": "medvlp.transform_pipeline", "version": 1, "transforms": [{"type": "crop_or_pad", "size": {"x": 1e40, "y": 1, "z": 1}}]}""", "transforms[0] (type \"crop_or_pad\")")]
    [InlineData("""{"format": "medvlp.transform_pipeline", "version": 1, "transforms": [{"type": 5}]}""", "transforms[0] (type \"?\")")]
    [InlineData("""{"format": "medvlp.transform_pipeline", "version": 1, "transforms": [null]}""", "transforms[0] (type \"?\")")]
    public void MalformedFieldsNameTheField(string json, string field)
    {
        var ex = Assert.Throws<VolumeFormatException>(() => TransformPipeline.FromJson(json));
        Assert.Equal(field, ex.Field);
        Assert.Null(ex.FilePath);
    }

    [Fact]
    public async Task APipelineFileThatIsAFifoOrTooLargeIsRefused()
    {
        using var tmp = TestData.NewTempFolder();
        var fifo = tmp.File("preprocessing.json");
        Assert.Equal(0, Mkfifo(fifo, Convert.ToUInt32("644", 8)));
        var task = Task.Run(() => Assert.Throws<VolumeFormatException>(() => TransformPipeline.Load(fifo)));
        var finished = await Task.WhenAny(task, Task.Delay(TimeSpan.FromSeconds(60))) == task;
        Assert.True(finished || Release(fifo), "loading a FIFO as a pipeline hung");
        Assert.Contains("FIFO", (await task).Problem, StringComparison.Ordinal);

        var big = tmp.File("big.json");
        File.WriteAllText(big, Pipeline() + new string(' ', TransformPipeline.MaxFileBytes));
        Assert.Contains("shorter than", Assert.Throws<VolumeFormatException>(() => TransformPipeline.Load(big)).Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void NonFiniteVoxelsAreCounted()
    {
        var data = new float[1000];
        Assert.True(new Volume(data, new VolumeShape(10, 10, 10)).CountNonFinite().AllFinite);
        data[3] = float.NaN;
        data[999] = float.PositiveInfinity;
        data[500] = float.NegativeInfinity;
        var count = new Volume(data, new VolumeShape(10, 10, 10)).CountNonFinite();
        Assert.Equal(new NonFiniteCount(1, 2, 1000), count);
        Assert.Equal("3 of 1000 voxels are NaN or infinite", count.Describe());
        Array.Fill(data, float.NaN);
        Assert.Equal("all 1000 voxels are NaN", new Volume(data, new VolumeShape(10, 10, 10)).CountNonFinite().Describe());
    }

    private static bool Release(string fifo)
    {
        using var writer = new FileStream(fifo, FileMode.Open, FileAccess.Write);
        return false;
    }

    [LibraryImport("libc", EntryPoint = "mkfifo", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Mkfifo(string path, uint mode);
}
