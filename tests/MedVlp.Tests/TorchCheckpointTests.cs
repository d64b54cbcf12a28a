using System.IO.Compression;
using System.Text.Json;
using MedVlp.Serialization;
using MedVlp.Testing;
using MedVlp.Weights;
using static TorchSharp.torch;

namespace MedVlp.Tests;

/// <summary>torch.save zip checkpoints written by PyTorch 1.13 (tests/golden/make_weights_golden.py) and hostile variants.</summary>
public sealed class TorchCheckpointTests
{
    private static JsonElement Views => JsonDocument.Parse(File.ReadAllText(TestData.Golden("weights/weights_golden.json"))).RootElement.GetProperty("views");

    [Fact]
    public void ReadsDTypesScalarsAndViewsThatShareOneStorage()
    {
        using var scope = NewDisposeScope();
        var t = TorchCheckpoint.Load(TestData.Golden("weights/views.pt"));
        Assert.Equal(ScalarType.Float16, t["f16"].dtype);
        Assert.Equal([1.5f, -2.25f, 65504f], t["f16"].to_type(ScalarType.Float32).data<float>().ToArray());
        Assert.Equal(ScalarType.BFloat16, t["bf16"].dtype);
        Assert.Equal(-2.25f, t["bf16"][1].to_type(ScalarType.Float32).item<float>());
        Assert.Equal([1L, -2L, 3L, 4_000_000_000L], t["i64"].data<long>().ToArray());
        Assert.Equal([true, false, true], t["flag"].data<bool>().ToArray());
        Assert.Empty(t["scalar"].shape);
        Assert.Equal(7.5f, t["scalar"].item<float>());
        foreach (var name in new[] { "whole", "row", "column", "transposed" })
        {
            Assert.Equal(Views.GetProperty(name).EnumerateArray().Select(e => e.GetSingle()), t[name].contiguous().flatten().data<float>().ToArray());
        }

        Assert.Equal([6L, 4L], t["transposed"].shape);
        t["row"].add_(1); // independent copies: changing one view does not change another
        Assert.Equal(12f, t["whole"][2, 0].item<float>());
    }

    [Fact]
    public void InspectListsTensorsWithoutReadingData()
    {
        var info = WeightFile.Inspect(TestData.Golden("weights/bert_tiny.bin"));
        Assert.Equal(WeightFileFormat.TorchZip, info.Format);
        Assert.Equal("hf-bert", info.Layout?.Name);
        var word = info.Tensors.Single(x => x.Name == "bert.embeddings.word_embeddings.weight");
        Assert.Equal([60L, 32L], word.Shape);
        Assert.Equal(ScalarType.Float32, word.DType);
        Assert.Equal(info.Tensors.Sum(x => x.ElementCount) * 4, info.TotalBytes);
    }

    [Fact]
    public void NestedTrainingCheckpointIsFlattenedToDottedNames()
    {
        using var scope = NewDisposeScope();
        var t = TorchCheckpoint.Load(TestData.Golden("weights/training_checkpoint.pth"));
        Assert.Equal(["model.encoder.bias", "model.encoder.weight"], t.Keys.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void APickleReferencingAnotherGlobalIsRefusedByName()
    {
        var path = TestData.Golden("weights/evil_global.pt");
        var ex = Assert.Throws<ModelFormatException>(() => TorchCheckpoint.Load(path));
        Assert.Equal(path, ex.FilePath);
        Assert.EndsWith("data.pkl", ex.Field, StringComparison.Ordinal);
        Assert.Contains("posix.system", ex.Message, StringComparison.Ordinal);
        Assert.Throws<ModelFormatException>(() => WeightFile.Inspect(path));
    }

    [Theory]
    [InlineData("storage-too-short", "bert.embeddings.word_embeddings.weight")]
    [InlineData("storage-missing", "bert.embeddings.word_embeddings.weight")]
    [InlineData("pickle-truncated", "data.pkl")]
    [InlineData("huge-numel", "bert.embeddings.word_embeddings.weight")]
    [InlineData("not-zip", "format")]
    [InlineData("zip-truncated", "zip directory")]
    public void HostileArchivesEndInOneClearException(string kind, string field)
    {
        using var folder = TestData.NewTempFolder();
        var source = TestData.Golden("weights/bert_tiny.bin");
        var path = folder.File("bad.bin");
        var bytes = File.ReadAllBytes(source);
        if (kind is "not-zip")
        {
            File.WriteAllBytes(path, [0x80, 0x02, 0x8a, 0x0a]); // the legacy (pre-1.6) torch.save magic
        }
        else if (kind is "zip-truncated")
        {
            File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        }
        else
        {
            Rewrite(source, path, kind);
        }

        var ex = Assert.Throws<ModelFormatException>(() => TorchCheckpoint.Load(path));
        Assert.Equal(path, ex.FilePath);
        Assert.EndsWith(field, ex.Field, StringComparison.Ordinal);
        Assert.StartsWith(path, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AnEndOfDirectoryRecordThatMiscountsTheEntriesIsRefusedAndTheFileIsClosed()
    {
        // Fuzzer finding (torchzip target): .NET reads the zip's central directory lazily, so a record whose entry count
        // disagrees with the directory escaped as InvalidDataException and left the file open.
        using var folder = TestData.NewTempFolder();
        var bytes = File.ReadAllBytes(TestData.Golden("weights/views.pt"));
        var eocd = LastIndexOf(bytes, [0x50, 0x4b, 0x05, 0x06]);
        Assert.True(eocd > 0);
        BitConverter.GetBytes((ushort)(BitConverter.ToUInt16(bytes, eocd + 10) + 1)).CopyTo(bytes, eocd + 10); // entries on this disk
        BitConverter.GetBytes((ushort)(BitConverter.ToUInt16(bytes, eocd + 8) + 1)).CopyTo(bytes, eocd + 8);
        var path = folder.File("miscounted.pt");
        File.WriteAllBytes(path, bytes);

        var ex = Assert.Throws<ModelFormatException>(() => TorchCheckpoint.Load(path));
        Assert.Equal(path, ex.FilePath);
        Assert.Equal("zip directory", ex.Field);
        Assert.Throws<ModelFormatException>(() => WeightFile.Inspect(path));
        using (File.Open(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None))
        {
            // Opened exclusively: no handle was left behind.
        }
    }

    [Fact]
    public void ACorruptLocalHeaderOfThePickleIsAModelFormatException()
    {
        // Fuzzer finding (torchzip target): the entry's local header is read by ZipArchiveEntry.Open, which threw
        // InvalidDataException ("A local file header is corrupt") outside the reader's guard.
        using var folder = TestData.NewTempFolder();
        var bytes = File.ReadAllBytes(TestData.Golden("weights/views.pt"));
        // The central-directory record of <name>/data.pkl: point its local-header offset one byte past the real header.
        var at = IndexOf(bytes, [0x50, 0x4b, 0x01, 0x02]);
        for (; at >= 0; at = IndexOf(bytes, [0x50, 0x4b, 0x01, 0x02], at + 4))
        {
            var nameLength = BitConverter.ToUInt16(bytes, at + 28);
            if (System.Text.Encoding.ASCII.GetString(bytes, at + 46, nameLength).EndsWith("/data.pkl", StringComparison.Ordinal))
            {
                break;
            }
        }

        Assert.True(at >= 0);
        BitConverter.GetBytes(BitConverter.ToUInt32(bytes, at + 42) + 1).CopyTo(bytes, at + 42);
        var path = folder.File("corrupt-local-header.pt");
        File.WriteAllBytes(path, bytes);

        var ex = Assert.Throws<ModelFormatException>(() => TorchCheckpoint.Load(path));
        Assert.Equal(path, ex.FilePath);
        Assert.EndsWith("data.pkl", ex.Field, StringComparison.Ordinal);
    }

    private static int LastIndexOf(byte[] data, byte[] pattern)
    {
        for (var i = data.Length - pattern.Length; i >= 0; i--)
        {
            if (data.AsSpan(i, pattern.Length).SequenceEqual(pattern))
            {
                return i;
            }
        }

        return -1;
    }

    [Fact]
    public void AZipDirectoryThatLiesAboutSizesIsRefusedBeforeAllocating()
    {
        using var folder = TestData.NewTempFolder();
        var bytes = File.ReadAllBytes(TestData.Golden("weights/bert_tiny.bin"));
        // The central-directory record of <name>/data.pkl: say it holds 400 MB (stored, so compressed size too).
        var at = IndexOf(bytes, [0x50, 0x4b, 0x01, 0x02]);
        for (; at >= 0; at = IndexOf(bytes, [0x50, 0x4b, 0x01, 0x02], at + 4))
        {
            var nameLength = BitConverter.ToUInt16(bytes, at + 28);
            if (System.Text.Encoding.ASCII.GetString(bytes, at + 46, nameLength).EndsWith("/data.pkl", StringComparison.Ordinal))
            {
                break;
            }
        }

        Assert.True(at > 0);
        BitConverter.GetBytes(400_000_000u).CopyTo(bytes, at + 20);
        BitConverter.GetBytes(400_000_000u).CopyTo(bytes, at + 24);
        var path = folder.File("lying.bin");
        File.WriteAllBytes(path, bytes);

        var before = GC.GetAllocatedBytesForCurrentThread();
        var ex = Assert.Throws<ModelFormatException>(() => TorchCheckpoint.Load(path));
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 16_000_000, "a lying size must not size an allocation");
        Assert.Contains(path, ex.Message, StringComparison.Ordinal);
    }

    /// <summary>Copies a torch.save archive, damaging one part.</summary>
    private static void Rewrite(string source, string target, string kind)
    {
        using var input = ZipFile.OpenRead(source);
        var prefix = input.Entries.Single(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal)).FullName[..^"data.pkl".Length];
        var pickle = ReadAll(input.GetEntry(prefix + "data.pkl")!);
        // The word embeddings are the first tensor: its persistent id names storage "0" with 60 x 32 elements.
        using var output = ZipFile.Open(target, ZipArchiveMode.Create);
        foreach (var entry in input.Entries)
        {
            var data = ReadAll(entry);
            if (entry.FullName == prefix + "data/0" && kind == "storage-too-short")
            {
                data = data[..100];
            }
            else if (entry.FullName == prefix + "data/0" && kind == "storage-missing")
            {
                continue;
            }
            else if (entry.FullName == prefix + "data.pkl" && kind == "pickle-truncated")
            {
                data = pickle[..(pickle.Length / 2)];
            }
            else if (entry.FullName == prefix + "data.pkl" && kind == "huge-numel")
            {
                // The first storage's numel (BININT 1920 = 60 x 32) becomes 2^31 - 1: the size check must refuse it
                // before anything that large is allocated.
                data = (byte[])pickle.Clone();
                var at = IndexOf(data, [(byte)'M', 0x80, 0x07]); // BININT2 1920
                Assert.True(at > 0);
                data = [.. data[..at], (byte)'J', 0xff, 0xff, 0xff, 0x7f, .. data[(at + 3)..]];
            }

            using var s = output.CreateEntry(entry.FullName, CompressionLevel.NoCompression).Open();
            s.Write(data);
        }
    }

    private static byte[] ReadAll(ZipArchiveEntry entry)
    {
        using var s = entry.Open();
        using var m = new MemoryStream();
        s.CopyTo(m);
        return m.ToArray();
    }

    private static int IndexOf(byte[] data, byte[] pattern, int from = 0)
    {
        for (var i = from; i + pattern.Length <= data.Length; i++)
        {
            if (data.AsSpan(i, pattern.Length).SequenceEqual(pattern))
            {
                return i;
            }
        }

        return -1;
    }
}
