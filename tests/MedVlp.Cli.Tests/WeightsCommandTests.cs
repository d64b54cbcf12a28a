using System.Text.Json;
using MedVlp.Serialization;
using MedVlp.Testing;

namespace MedVlp.Cli.Tests;

/// <summary><c>medvlp weights inspect|convert</c> run as a real process on the golden checkpoints.</summary>
public sealed class WeightsCommandTests
{
    [Fact]
    public void InspectReportsFormatTensorsAndLayout()
    {
        var result = CliRunner.Run("weights", "inspect", TestData.Golden("weights/bert_tiny.bin"), "--json");
        Assert.True(result.ExitCode == 0, result.StdErr);
        using var doc = JsonDocument.Parse(result.StdOut);
        var json = doc.RootElement;
        Assert.Equal("TorchZip", json.GetProperty("format").GetString());
        Assert.Equal("hf-bert", json.GetProperty("layout").GetString());
        Assert.Equal(42, json.GetProperty("tensor_count").GetInt32());
        var word = json.GetProperty("tensors").EnumerateArray().Single(t => t.GetProperty("name").GetString() == "bert.embeddings.word_embeddings.weight");
        Assert.Equal([60, 32], word.GetProperty("shape").EnumerateArray().Select(d => d.GetInt32()));
        Assert.Equal(json.GetProperty("total_elements").GetInt64() * 4, json.GetProperty("total_bytes").GetInt64());

        var table = CliRunner.Run("weights", "inspect", TestData.Golden("weights/bert_tiny.safetensors"));
        Assert.True(table.ExitCode == 0, table.StdErr);
        Assert.Contains("hf-bert", table.StdOut, StringComparison.Ordinal);
    }

    [Fact]
    public void ConvertWritesSafetensorsWithMedVlpNames()
    {
        using var folder = TestData.NewTempFolder();
        var output = folder.File("gpt2.safetensors");
        var result = CliRunner.Run("weights", "convert", TestData.Golden("weights/gpt2_tiny.bin"), output, "--layout", "hf-gpt2", "--dtype", "f16");
        Assert.True(result.ExitCode == 0, result.StdErr);
        var header = Safetensors.ReadHeader(output);
        Assert.Equal("hf-gpt2", header.Metadata["medvlp_layout"]);
        var cAttn = header.Entries.Single(e => e.Name == "transformer.h.0.attn.c_attn.weight");
        Assert.Equal([72L, 24L], cAttn.Shape); // Conv1D [24, 72] transposed into Linear [out, in]
        Assert.Equal(SafetensorsDType.F16, cAttn.DType);
        Assert.DoesNotContain(header.Entries, e => e.Name.EndsWith(".attn.bias", StringComparison.Ordinal));
    }

    [Fact]
    public void HostileCheckpointsFailWithOneLine()
    {
        var path = TestData.Golden("weights/evil_global.pt");
        var result = CliRunner.Run("weights", "inspect", path);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("posix.system", result.StdErr, StringComparison.Ordinal);
        Assert.Contains(path, result.StdErr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", result.StdErr, StringComparison.Ordinal);
    }
}
