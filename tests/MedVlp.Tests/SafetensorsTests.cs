using System.Buffers.Binary;
using System.Text;
using MedVlp.Serialization;
using MedVlp.Testing;
using static TorchSharp.torch;

namespace MedVlp.Tests;

public sealed class SafetensorsTests
{
    [Fact]
    public void RoundTripsEveryDTypeShapeAndMetadata()
    {
        using var folder = TestData.NewTempFolder();
        using var scope = NewDisposeScope();
        var tensors = new Dictionary<string, Tensor>
        {
            ["a.weight"] = randn(3, 4),
            ["b.bias"] = arange(5, dtype: ScalarType.Float64),
            ["c.ids"] = tensor(new long[] { -1, long.MaxValue, 3 }),
            ["d.i32"] = tensor(new[] { 1, -2 }),
            ["e.half"] = tensor(new[] { 1.5f, -0.25f, 65504f }).to_type(ScalarType.Float16),
            ["f.bf16"] = tensor(new[] { 1.5f, -3f, 1e30f }).to_type(ScalarType.BFloat16),
            ["g.u8"] = tensor(new byte[] { 0, 255 }),
            ["h.bool"] = tensor(new[] { true, false, true }),
            ["i.scalar"] = tensor(2.5f),
            ["j.empty"] = zeros(0, 3),
        };
        var path = folder.File("w.safetensors");
        Safetensors.Save(path, tensors, new Dictionary<string, string> { ["format"] = "pt" });

        var header = Safetensors.ReadHeader(path);
        Assert.Equal("pt", header.Metadata["format"]);
        Assert.Equal(0, header.DataOffset % 8);
        var loaded = Safetensors.Load(path);
        Assert.Equal(tensors.Keys.Order(), loaded.Keys.Order());
        foreach (var (name, expected) in tensors)
        {
            var actual = loaded[name];
            Assert.Equal(expected.dtype, actual.dtype);
            Assert.Equal(expected.shape, actual.shape);
            Assert.True(expected.to_type(ScalarType.Float64).eq(actual.to_type(ScalarType.Float64)).all().item<bool>(), name);
            actual.Dispose();
        }
    }

    [Fact]
    public void ReadsAFileWrittenByHandFromTheSpecification()
    {
        // Header and data written byte by byte as the format specification describes, not by MedVlp's writer.
        var json = "{\"__metadata__\":{\"k\":\"v\"},\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"y\":{\"dtype\":\"I16\",\"shape\":[1,1],\"data_offsets\":[8,10]}}";
        var data = new byte[10];
        BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(0), 1.25f);
        BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(4), -7f);
        BinaryPrimitives.WriteInt16LittleEndian(data.AsSpan(8), -300);
        using var folder = TestData.NewTempFolder();
        var path = folder.File("spec.safetensors");
        File.WriteAllBytes(path, Build(json, data));
        var loaded = Safetensors.Load(path);
        Assert.Equal([1.25f, -7f], loaded["x"].data<float>().ToArray());
        Assert.Equal([1L, 1L], loaded["y"].shape);
        Assert.Equal((short)-300, loaded["y"].data<short>()[0]);
        foreach (var t in loaded.Values)
        {
            t.Dispose();
        }
    }

    [Fact]
    public void ReadsTheGoldenFileWrittenByTheReferenceScript()
    {
        var header = Safetensors.ReadHeader(TestData.Golden("vlp_tiny.safetensors"));
        Assert.Equal(77, header.Entries.Count);
        Assert.Contains(header.Entries, e => e.Name == "text_model.encoder.layer.1.attention.self.query.weight" && e.Shape.SequenceEqual([16L, 16L]));
    }

    [Theory]
    [InlineData("huge-length", "header length")]
    [InlineData("length-past-end", "header length")]
    [InlineData("short-file", "header length")]
    [InlineData("not-json", "header")]
    [InlineData("bad-dtype", "x.dtype")]
    [InlineData("numeric-dtype", "x.dtype")]
    [InlineData("negative-shape", "x.shape")]
    [InlineData("size-mismatch", "x.data_offsets")]
    [InlineData("reversed-offsets", "x.data_offsets")]
    [InlineData("gap", "y")]
    [InlineData("overlap", "y")]
    [InlineData("trailing-data", "data section")]
    [InlineData("invalid-utf8", "header")]
    [InlineData("absurd-shape", "x.data_offsets")]
    [InlineData("truncated-data", "data section")]
    [InlineData("metadata-not-string", "__metadata__.k")]
    public void RejectsMalformedFilesNamingTheField(string kind, string field)
    {
        var eight = new byte[8];
        var sixteen = new byte[16];
        var bytes = kind switch
        {
            "huge-length" => BitConverter.GetBytes(200_000_000UL).Concat(new byte[16]).ToArray(),
            "length-past-end" => BitConverter.GetBytes(1000UL).Concat(Encoding.UTF8.GetBytes("{}")).ToArray(),
            "short-file" => new byte[5],
            "not-json" => Build("{\"x\": [", eight),
            "bad-dtype" => Build("{\"x\":{\"dtype\":\"F128\",\"shape\":[2],\"data_offsets\":[0,8]}}", eight),
            "numeric-dtype" => Build("{\"x\":{\"dtype\":\"8\",\"shape\":[2],\"data_offsets\":[0,8]}}", eight),
            "negative-shape" => Build("{\"x\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", eight),
            "size-mismatch" => Build("{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", eight),
            "reversed-offsets" => Build("{\"x\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", eight),
            "gap" => Build("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"y\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", new byte[12]),
            "overlap" => Build("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", new byte[12]),
            "trailing-data" => Build("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", sixteen),
            "invalid-utf8" => InvalidUtf8(Build("{\"x~\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", eight)),
            "absurd-shape" => Build("{\"x\":{\"dtype\":\"F32\",\"shape\":[1000000000,1000000000],\"data_offsets\":[0,8]}}", eight),
            "truncated-data" => Build("{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", eight),
            "metadata-not-string" => Build("{\"__metadata__\":{\"k\":1}}", []),
            _ => throw new ArgumentOutOfRangeException(nameof(kind)),
        };
        using var folder = TestData.NewTempFolder();
        var path = folder.File("bad.safetensors");
        File.WriteAllBytes(path, bytes);
        var ex = Assert.Throws<ModelFormatException>(() => Safetensors.Load(path));
        Assert.Equal(path, ex.FilePath);
        Assert.Equal(field, ex.Field);
        Assert.StartsWith(path, ex.Message, StringComparison.Ordinal);
    }

    /// <summary>Turns the '~' in a built file into a byte that is not UTF-8 (what the fuzzer found: System.Text.Json
    /// only validates UTF-8 when a string is read).</summary>
    private static byte[] InvalidUtf8(byte[] file)
    {
        file[Array.IndexOf(file, (byte)'~')] = 0xff;
        return file;
    }

    private static byte[] Build(string json, byte[] data)
    {
        var header = Encoding.UTF8.GetBytes(json);
        var result = new byte[8 + header.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(result, (ulong)header.Length);
        header.CopyTo(result, 8);
        data.CopyTo(result, 8 + header.Length);
        return result;
    }
}
