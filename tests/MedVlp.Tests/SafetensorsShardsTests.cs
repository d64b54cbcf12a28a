using MedVlp.Serialization;
using MedVlp.Testing;
using MedVlp.Weights;
using static TorchSharp.torch;

namespace MedVlp.Tests;

[Collection(nameof(TorchRandomState))] // creates randomly initialised modules: libtorch's global generator is shared
public sealed class SafetensorsShardsTests
{
    [Fact]
    public void ShardedCheckpointRoundTripsAndKeepsHalfPrecision()
    {
        using var folder = TestData.NewTempFolder();
        using var scope = NewDisposeScope();
        var tensors = new Dictionary<string, Tensor>
        {
            ["a"] = randn(64, 64).to_type(ScalarType.Float16),
            ["b"] = randn(100).to_type(ScalarType.BFloat16),
            ["c"] = randn(10, 10),
            ["d"] = arange(7L),
        };
        var index = SafetensorsShards.Save(folder.Path, tensors, maxShardBytes: 8192);
        Assert.True(Directory.GetFiles(folder.Path, "model-*-of-*.safetensors").Length >= 2);
        Assert.Equal(WeightFileFormat.ShardedSafetensors, WeightFile.DetectFormat(index));
        var loaded = WeightFile.Load(index);
        foreach (var (name, t) in tensors)
        {
            Assert.Equal(t.dtype, loaded[name].dtype);
            Assert.True(t.eq(loaded[name]).all().item<bool>(), name);
        }

        var f32 = SafetensorsShards.Load(index, new SafetensorsLoadOptions { DType = ScalarType.Float32 });
        Assert.Equal(ScalarType.Float32, f32["a"].dtype);
        Assert.Equal(ScalarType.Int64, f32["d"].dtype); // integers are never converted
        Assert.Equal(4, WeightFile.Inspect(index).Tensors.Count);
    }

    [Theory]
    [InlineData("{\"weight_map\":{\"a\":\"../outside.safetensors\"}}", "weight_map.a")]
    [InlineData("{\"weight_map\":{\"a\":\"model-00001-of-00001.safetensors\",\"zzz\":\"model-00001-of-00001.safetensors\"}}", "zzz")]
    [InlineData("{\"weight_map\":{\"a\":\"gone.safetensors\"}}", "weight_map")]
    [InlineData("{\"weight_map\":[]}", "weight_map")]
    [InlineData("{\"weight_map\":{\"a\":\"model-00001-of-00001.safetensors\"}}", "b")]
    public void HostileIndexesNameTheField(string json, string field)
    {
        using var folder = TestData.NewTempFolder();
        using var scope = NewDisposeScope();
        SafetensorsShards.Save(folder.Path, new Dictionary<string, Tensor> { ["a"] = ones(2), ["b"] = ones(3) }, maxShardBytes: 1 << 20);
        var index = folder.File(SafetensorsShards.IndexFileName);
        File.WriteAllText(index, json);
        var ex = Assert.Throws<ModelFormatException>(() => SafetensorsShards.Load(index));
        Assert.Equal(field, ex.Field);
        Assert.Contains(folder.Path, ex.Message, StringComparison.Ordinal);
    }
}
