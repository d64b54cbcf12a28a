using System.Text;
using MedVlp.Volumes;
using MedVlp.Volumes.IO;
using MedVlp.Volumes.IO.Dicom;
using MedVlp.Volumes.IO.MetaImage;
using MedVlp.Volumes.IO.Nifti;
using MedVlp.Volumes.IO.Nrrd;
using SharpFuzz;

// Fuzz targets: any input must either read as a volume (or load as a model package) or end in the documented exception
// (VolumeFormatException; for packages also ModelFormatException; safetensors: a validated header or ModelFormatException). Anything else (IndexOutOfRange, OutOfMemory, an
// endless loop caught by AFL's timeout, a native abort) is a bug.
//   medvlp-fuzz TARGET                  run under afl-fuzz (SharpFuzz out-of-process mode);
//                                       TARGET = dicom | nifti | metaimage | nrrd | package | safetensors | torchzip | pickle
//   medvlp-fuzz TARGET --replay FILES   run inputs once each without AFL (to check crashes and turn them into tests);
//                                       use an uninstrumented build (run-fuzz.sh publishes one to out-replay/)
//   medvlp-fuzz package --make-seed DIR write a tiny model package's seed input and weights to DIR (uninstrumented build)
// Nothing from MedVlp.Volumes or MedVlp may run before Fuzzer.OutOfProcess.Run: instrumented code needs AFL's trace map.
string[] targets = ["dicom", "nifti", "metaimage", "nrrd", "package", "safetensors", "torchzip", "pickle"];
if (args.Length == 0 || !targets.Contains(args[0]))
{
    Console.Error.WriteLine("usage: MedVlp.Fuzz dicom|nifti|metaimage|nrrd|package|safetensors|torchzip|pickle [--replay FILE... | --make-seed DIR]");
    return 2;
}

var target = args[0];
if (target == "package" && args.Length > 2 && args[1] == "--make-seed")
{
    PackageTarget.MakeSeed(args[2]);
    return 0;
}

var scratch = Path.Combine(Path.GetTempPath(), $"medvlp-fuzz-{Environment.ProcessId}.{target switch { "nifti" => "nii", "safetensors" => "safetensors", "torchzip" or "pickle" => "pt", _ => "dcm" }}");

// MetaImage, NRRD and packages get a folder: detached headers may name the data files beside them (data.raw, s1.raw,
// s2.raw), and nothing outside it may ever be read.
var folder = Path.Combine(Path.GetTempPath(), $"medvlp-fuzz-{target}-{Environment.ProcessId}");
if (target is "metaimage" or "nrrd" or "package")
{
    Directory.CreateDirectory(folder);
    scratch = Path.Combine(folder, target == "metaimage" ? "input.mhd" : target == "nrrd" ? "input.nhdr" : "unused");
    File.WriteAllBytes(Path.Combine(folder, "data.raw"), [.. Enumerable.Range(0, 4096).Select(i => (byte)(i * 31))]);
    File.WriteAllBytes(Path.Combine(folder, "s1.raw"), [.. Enumerable.Range(0, 512).Select(i => (byte)i)]);
    File.WriteAllBytes(Path.Combine(folder, "s2.raw"), [.. Enumerable.Range(0, 512).Select(i => (byte)(255 - i))]);
    if (target == "package")
    {
        // The weights stay fixed (safetensors has its own fuzz-free parser tests); config, preprocessing and vocab are fuzzed.
        var weights = Environment.GetEnvironmentVariable("MEDVLP_FUZZ_WEIGHTS")
            ?? throw new InvalidOperationException("set MEDVLP_FUZZ_WEIGHTS to the model.safetensors made by --make-seed");
        File.Copy(weights, Path.Combine(folder, "model.safetensors"), overwrite: true);
    }
}

if (args.Length > 1 && args[1] == "--replay")
{
    var failures = 0;
    foreach (var file in args.Skip(2))
    {
        try
        {
            Run(File.OpenRead(file));
            Console.WriteLine($"ok      {file}");
        }
#pragma warning disable CA1031 // replay reports every failure kind
        catch (Exception ex)
#pragma warning restore CA1031
        {
            failures++;
            Console.WriteLine($"CRASH   {file}: {ex.GetType().Name}: {ex.Message}");
        }
    }

    return failures == 0 ? 0 : 1;
}

Fuzzer.OutOfProcess.Run(stream => Run(stream));
return 0;

void Run(Stream input)
{
    if (target == "package")
    {
        PackageTarget.Run(input, folder);
        return;
    }

    if (target is "torchzip" or "pickle")
    {
        TorchTarget.Run(input, scratch, target == "pickle");
        return;
    }

    using (input)
    using (var file = File.Create(scratch))
    {
        input.CopyTo(file);
    }

    if (target == "safetensors")
    {
        // The header parser and every check made before tensor data is allocated (length, JSON, dtypes, shapes,
        // offsets tiling the data section exactly).
        try
        {
            _ = MedVlp.Serialization.Safetensors.ReadHeader(scratch);
        }
        catch (MedVlp.Serialization.ModelFormatException)
        {
            // The documented outcome for bad input.
        }

        return;
    }

    try
    {
        // NIfTI: the reader sniffs gzip by content, so gzipped and plain inputs both reach the header parser.
        var options = new VolumeReadOptions { MaxVoxels = 1 << 24 };
        _ = target switch
        {
            "nifti" => NiftiReader.Read(scratch, options),
            "metaimage" => MetaImageReader.Read(scratch, options),
            "nrrd" => NrrdReader.Read(scratch, options),
            _ => DicomSeriesReader.Read(scratch, options),
        };
    }
    catch (VolumeFormatException)
    {
        // The documented outcome for bad input.
    }
}

/// <summary>The model-package target: config.json, preprocessing.json and vocab.txt, separated by <see cref="Separator"/>.</summary>
internal static class PackageTarget
{
    public const string Separator = "\n--8<--\n";
    private static readonly string[] PackageFiles = ["config.json", "preprocessing.json", "vocab.txt"];
    private static readonly HashSet<string> Known = [.. (Environment.GetEnvironmentVariable("MEDVLP_FUZZ_KNOWN") ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries)];

    public static void Run(Stream input, string folder)
    {
        byte[] bytes;
        using (input)
        using (var m = new MemoryStream())
        {
            input.CopyTo(m);
            bytes = m.ToArray();
        }

        var parts = Split(bytes);
        var preprocessing = parts.ElementAtOrDefault(1) ?? [];
        var vocab = parts.ElementAtOrDefault(2) ?? [];
        File.WriteAllBytes(Path.Combine(folder, "config.json"), FixIntegrity(parts.ElementAtOrDefault(0) ?? [], preprocessing, vocab));
        File.WriteAllBytes(Path.Combine(folder, "preprocessing.json"), preprocessing);
        File.WriteAllBytes(Path.Combine(folder, "vocab.txt"), vocab);
        try
        {
            using var model = MedVlp.VisionLanguageModel.Load(folder);
        }
        catch (Exception ex) when (ex is MedVlp.Serialization.ModelFormatException or VolumeFormatException)
        {
            // The documented outcomes for a bad package.
        }
        catch (Exception ex) when (Known.Contains(ex.GetType().Name))
        {
            // A finding already reported (MEDVLP_FUZZ_KNOWN=TypeName,...): look past it for new ones.
        }
    }

    /// <summary>Writes seed.txt (a valid tiny package as one input) and model.safetensors into <paramref name="directory"/>.</summary>
    public static void MakeSeed(string directory)
    {
        Directory.CreateDirectory(directory);
        var data = Environment.GetEnvironmentVariable("MEDVLP_TESTDATA") ?? throw new InvalidOperationException("set MEDVLP_TESTDATA");
        var vocab = Path.Combine(directory, "small-vocab.txt");
        File.WriteAllLines(vocab, File.ReadLines(Path.Combine(data, "bert", "vocab.txt")).Take(1200)); // [PAD], [UNK], [CLS], [SEP], [MASK], common words
        var tokenizer = MedVlp.Text.WordPieceTextTokenizer.FromVocabularyFile(vocab);
        var config = new MedVlp.Modeling.Clip3dConfig
        {
            Volume = new MedVlp.Modeling.VolumeTransformerConfig { InputSize = 16, PatchSize = 8, Width = 16, Depth = 1, Heads = 2, MlpRatio = 2 },
            Text = new MedVlp.Modeling.BertConfig
            {
                VocabSize = tokenizer.VocabularySize, HiddenSize = 16, NumHiddenLayers = 1, NumAttentionHeads = 2, IntermediateSize = 32,
                MaxPositionEmbeddings = 64, HiddenDropoutProb = 0, AttentionProbsDropoutProb = 0, AddPoolingLayer = false,
            },
            EmbeddingDim = 8,
            MaxTextTokens = 64,
        };
        var preprocessing = new MedVlp.Volumes.Transforms.TransformPipeline(
        [
            new MedVlp.Volumes.Transforms.MinMaxNormalize(),
            new MedVlp.Volumes.Transforms.ResizeLongestSide { Size = 16 },
            new MedVlp.Volumes.Transforms.CropOrPad { Size = new VolumeShape(16, 16, 16) },
        ], "tiny");
        var package = Path.Combine(directory, "package");
        using (var model = MedVlp.VisionLanguageModel.Create(config, tokenizer, preprocessing, 1))
        {
            model.Save(package);
        }

        var seed = new List<byte>();
        foreach (var (file, n) in PackageFiles.Select((f, n) => (f, n)))
        {
            if (n > 0)
            {
                seed.AddRange(Encoding.ASCII.GetBytes(Separator));
            }

            seed.AddRange(File.ReadAllBytes(Path.Combine(package, file)));
        }

        File.WriteAllBytes(Path.Combine(directory, "seed.txt"), [.. seed]);
        File.Copy(Path.Combine(package, "model.safetensors"), Path.Combine(directory, "model.safetensors"), overwrite: true);
    }

    /// <summary>
    /// Package v2 records each file's SHA-256 and size in config.json: recompute them for the fuzzed preprocessing.json
    /// and vocab.txt (when config.json parses), so that mutations reach their parsers instead of the integrity check.
    /// </summary>
    private static byte[] FixIntegrity(byte[] config, byte[] preprocessing, byte[] vocab)
    {
        try
        {
            if (System.Text.Json.Nodes.JsonNode.Parse(config) is not System.Text.Json.Nodes.JsonObject root
                || root["files"] is not System.Text.Json.Nodes.JsonObject files)
            {
                return config;
            }

            foreach (var (name, content) in new[] { ("preprocessing.json", preprocessing), ("vocab.txt", vocab) })
            {
                if (files[name] is System.Text.Json.Nodes.JsonObject record)
                {
                    record["sha256"] = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(content));
                    record["size"] = content.LongLength;
                }
            }

            return Encoding.UTF8.GetBytes(root.ToJsonString());
        }
        catch (Exception ex) when (ex is System.Text.Json.JsonException or ArgumentException or InvalidOperationException)
        {
            return config;
        }
    }

    private static List<byte[]> Split(byte[] bytes)
    {
        var separator = Encoding.ASCII.GetBytes(Separator);
        var parts = new List<byte[]>();
        var start = 0;
        while (parts.Count < 2)
        {
            var at = bytes.AsSpan(start).IndexOf(separator);
            if (at < 0)
            {
                break;
            }

            parts.Add(bytes[start..(start + at)]);
            start += at + separator.Length;
        }

        parts.Add(bytes[start..]);
        return parts;
    }
}

/// <summary>
/// The torch.save targets. <c>torchzip</c>: the input is a whole archive (zip directory, entry sizes, byteorder, the
/// pickle, the storages). <c>pickle</c>: the input is only <c>data.pkl</c>, put into a copy of a fixed base archive
/// (<c>MEDVLP_FUZZ_TORCH_BASE</c>, a real torch.save file) so that mutations reach the restricted unpickler instead of
/// breaking the zip. Either way <see cref="MedVlp.Weights.TorchCheckpoint.Load"/> must return tensors or end in
/// <see cref="MedVlp.Serialization.ModelFormatException"/>.
/// </summary>
internal static class TorchTarget
{
    private static readonly Lazy<(string Prefix, List<(string Name, byte[] Data)> Entries)> Base = new(() =>
    {
        var path = Environment.GetEnvironmentVariable("MEDVLP_FUZZ_TORCH_BASE")
            ?? throw new InvalidOperationException("set MEDVLP_FUZZ_TORCH_BASE to a torch.save archive (run-fuzz.sh uses tests/golden/data/weights/views.pt)");
        using var archive = System.IO.Compression.ZipFile.OpenRead(path);
        var pickle = archive.Entries.Single(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal)).FullName;
        var entries = new List<(string, byte[])>();
        foreach (var e in archive.Entries.Where(e => e.FullName != pickle))
        {
            using var s = e.Open();
            using var m = new MemoryStream();
            s.CopyTo(m);
            entries.Add((e.FullName, m.ToArray()));
        }

        return (pickle[..^"data.pkl".Length], entries);
    });

    public static void Run(Stream input, string scratch, bool pickleOnly)
    {
        using (input)
        using (var file = File.Create(scratch))
        {
            if (!pickleOnly)
            {
                input.CopyTo(file);
            }
            else
            {
                var (prefix, entries) = Base.Value;
                using var zip = new System.IO.Compression.ZipArchive(file, System.IO.Compression.ZipArchiveMode.Create);
                using (var pkl = zip.CreateEntry(prefix + "data.pkl", System.IO.Compression.CompressionLevel.NoCompression).Open())
                {
                    input.CopyTo(pkl);
                }

                foreach (var (name, data) in entries)
                {
                    using var s = zip.CreateEntry(name, System.IO.Compression.CompressionLevel.NoCompression).Open();
                    s.Write(data);
                }
            }
        }

        try
        {
            var tensors = MedVlp.Weights.TorchCheckpoint.Load(scratch);
            foreach (var t in tensors.Values)
            {
                t.Dispose();
            }
        }
        catch (MedVlp.Serialization.ModelFormatException)
        {
            // The documented outcome for bad input.
        }
    }
}
