using System.Diagnostics;
using System.Text.Json.Nodes;
using MedVlp.Packaging;
using MedVlp.Serialization;
using MedVlp.Testing;
using Xunit.Abstractions;

namespace MedVlp.Tests;

[CollectionDefinition(nameof(ModelPackageHostileTests), DisableParallelization = true)]
public sealed class HostilePackageTestGroup;

/// <summary>
/// Damaged and malicious model packages: each must end in one <see cref="ModelFormatException"/> naming the file and the
/// field, quickly, without a large managed allocation (the thread's allocation counter, as the volume suite) or a large
/// native one (the process's resident set; this collection runs alone).
/// </summary>
[Collection(nameof(ModelPackageHostileTests))]
public sealed class ModelPackageHostileTests(ITestOutputHelper output)
{
    private const long ManagedBudget = 16 << 20;
    private const long NativeBudget = 256L << 20;

    public static TheoryData<string> Cases() =>
    [
        "layers-million", "width-8192", "over-parameter-budget", "heads-not-dividing", "negative-depth", "unknown-architecture",
        "type-mismatch", "config-not-json", "version-99", "fifo-weights", "fifo-config", "fifo-vocab", "weights-directory",
        "weights-missing", "weights-truncated", "weights-swapped", "vocab-swapped", "nan-weights", "inf-weights", "vocab-cut-rehashed",
        "vocab-cut-version1", "vocab-garbage", "preprocessing-garbage", "preprocessing-random", "file-path-escape", "file-not-listed",
        "bad-sha-syntax", "component-unknown", "config-invalid-utf8-name",
    ];

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task FailsWithOneClearErrorAndBoundedResources(string name)
    {
        using var folder = TestData.NewTempFolder();
        var package = folder.File("package");
        using (var model = VisionLanguageModel.Create(TestModels.SmallVocabularyConfig(), TestModels.SmallTokenizer(), TestModels.Preprocessing(16), seed: 1))
        {
            model.Save(package);
        }

        var (field, problem) = Damage(name, package, folder);
        GC.Collect();
        using var process = Process.GetCurrentProcess();
        process.Refresh();
        var rssBefore = process.WorkingSet64;
        var watch = Stopwatch.StartNew();
        // A hang (a FIFO opened for reading blocks until a writer comes) fails the test instead of the CI.
        long allocated = 0;
        var load = Task.Factory.StartNew(
            () =>
            {
                var start = GC.GetAllocatedBytesForCurrentThread();
                try
                {
                    using var model = VisionLanguageModel.Load(package);
                }
                finally
                {
                    allocated = GC.GetAllocatedBytesForCurrentThread() - start;
                }
            },
            CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        var finished = await Task.WhenAny(load, Task.Delay(TimeSpan.FromSeconds(60)));
        Assert.True(finished == load, $"{name}: Load did not return within 60 s");
        var ex = Assert.IsType<ModelFormatException>(load.Exception?.InnerException);
        process.Refresh();
        var rssGrowth = process.WorkingSet64 - rssBefore;
        output.WriteLine($"{name}: {ex.Message} ({watch.ElapsedMilliseconds} ms, resident +{rssGrowth >> 20} MB)");
        Assert.NotNull(ex.FilePath);
        Assert.StartsWith(folder.Path, ex.FilePath, StringComparison.Ordinal);
        Assert.Equal(field, ex.Field);
        Assert.Contains(problem, ex.Problem, StringComparison.Ordinal);
        Assert.True(allocated < ManagedBudget, $"{name}: allocated {allocated} bytes on the test thread");
        Assert.True(rssGrowth < NativeBudget, $"{name}: the process grew by {rssGrowth >> 20} MB before failing");
    }

    [Fact]
    public void ASoundPackageLoads()
    {
        using var folder = TestData.NewTempFolder();
        using (var model = VisionLanguageModel.Create(TestModels.SmallVocabularyConfig(), TestModels.SmallTokenizer(), TestModels.Preprocessing(16), seed: 1))
        {
            model.Save(folder.Path);
        }

        using var loaded = VisionLanguageModel.Load(folder.Path);
        Assert.Equal(8, loaded.VolumeEncoder.Embed(TestModels.RandomVolume(1)).Length);
    }

    private static (string? Field, string Problem) Damage(string name, string package, TempFolder folder)
    {
        string P(string file) => Path.Combine(package, file);
        switch (name)
        {
            case "layers-million":
                EditConfig(package, c => c["model"]!["text"]!["num_hidden_layers"] = 1_000_000);
                return ("model.text.num_hidden_layers", "expected a value in [0, 512], found 1000000");
            case "width-8192":
                EditConfig(package, c => c["model"]!["volume"]!["width"] = 8192);
                return ("vision_model.attn_pool.kv.bias", "shape [32] does not match the architecture's [16384]");
            case "over-parameter-budget":
                EditConfig(package, c =>
                {
                    c["model"]!["text"]!["vocab_size"] = 1 << 20;
                    c["model"]!["text"]!["hidden_size"] = 4096;
                    c["model"]!["text"]!["num_attention_heads"] = 16;
                });
                return ("model", "the budget (ModelLoadOptions.MaxParameters) is 2,000,000,000");
            case "heads-not-dividing":
                EditConfig(package, c => c["model"]!["volume"]!["heads"] = 5);
                return ("model.volume.heads", "expected width 16 to be a multiple of heads, found 5");
            case "negative-depth":
                EditConfig(package, c => c["model"]!["volume"]!["depth"] = -3);
                return ("model.volume.depth", "expected a value in [0, 512], found -3");
            case "unknown-architecture":
                EditConfig(package, c => c["architecture"] = "medblip-xxl");
                return ("architecture", "found \"medblip-xxl\"");
            case "type-mismatch":
                EditConfig(package, c => c["model"]!["type"] = "other");
                return ("model.type", "expected \"clip3d\" (the package's architecture), found \"other\"");
            case "config-invalid-utf8-name":
            {
                // Found by the package fuzz target: System.Text.Json transcodes property names lazily, so an invalid
                // byte in a name escaped as InvalidOperationException from deep inside the config binding.
                var bytes = File.ReadAllBytes(P("config.json")).ToList();
                var at = System.Text.Encoding.UTF8.GetString([.. bytes]).IndexOf("num_hidden_layers", StringComparison.Ordinal);
                bytes[at + 3] = 0xFF;
                File.WriteAllBytes(P("config.json"), [.. bytes]);
                return (null, "expected UTF-8 text, found an invalid byte sequence");
            }

            case "config-not-json":
                File.WriteAllText(P("config.json"), "{ \"format\": ");
                return ("format", "not a valid model configuration");
            case "version-99":
                EditConfig(package, c => c["version"] = 99);
                return ("version", "found 99");
            case "fifo-weights":
                MakeFifo(P("model.safetensors"));
                return ("files.model.safetensors", "a FIFO");
            case "fifo-config":
                MakeFifo(P("config.json"));
                return (null, "a FIFO");
            case "fifo-vocab":
                MakeFifo(P("vocab.txt"));
                return ("files.vocab.txt", "a FIFO");
            case "weights-directory":
                File.Delete(P("model.safetensors"));
                Directory.CreateDirectory(P("model.safetensors"));
                return ("files.model.safetensors", "expected a regular file, found a directory");
            case "weights-missing":
                File.Delete(P("model.safetensors"));
                return ("files.model.safetensors", "the file is missing");
            case "weights-truncated":
                Truncate(P("model.safetensors"), 100);
                return ("size", "the file was truncated, replaced or changed");
            case "weights-swapped":
                using (var other = VisionLanguageModel.Create(TestModels.SmallVocabularyConfig(), TestModels.SmallTokenizer(), TestModels.Preprocessing(16), seed: 2))
                {
                    other.Save(folder.File("other"));
                }

                File.Copy(folder.File("other/model.safetensors"), P("model.safetensors"), overwrite: true);
                return ("sha256", "the file was replaced or changed");
            case "vocab-swapped":
                var vocab = File.ReadAllText(P("vocab.txt")).Replace("ventricles", "ventricleX", StringComparison.Ordinal);
                File.WriteAllText(P("vocab.txt"), vocab);
                return ("sha256", "the file was replaced or changed");
            case "nan-weights":
            case "inf-weights":
                PoisonFirstWeight(P("model.safetensors"), name == "nan-weights" ? float.NaN : float.PositiveInfinity);
                Rehash(package, "model.safetensors");
                return ("logit_scale", "expected finite weights, found 1 NaN or infinite value(s)");
            case "vocab-cut-rehashed":
                File.WriteAllLines(P("vocab.txt"), File.ReadAllLines(P("vocab.txt")).Take(20));
                Rehash(package, "vocab.txt");
                return ("vocabulary", $"expected {TestModels.SmallTokenizer().VocabularySize} tokens (tokenizers.text.vocabulary_size in config.json), found 20");
            case "vocab-cut-version1":
                ToVersion1(package);
                File.WriteAllLines(P("vocab.txt"), File.ReadAllLines(P("vocab.txt")).Take(20));
                return ("vocabulary", "found 20: the file is truncated or belongs to another model");
            case "vocab-garbage":
                File.WriteAllText(P("vocab.txt"), "hello\nworld\n");
                Rehash(package, "vocab.txt");
                return ("vocabulary", "not a WordPiece vocabulary");
            case "preprocessing-garbage":
                File.WriteAllText(P("preprocessing.json"), "{\"transforms\": [{\"type\": \"resize\", \"size\": \"huge\"}]}");
                Rehash(package, "preprocessing.json");
                return ("preprocessing", "not a valid preprocessing pipeline");
            case "preprocessing-random":
                File.WriteAllText(P("preprocessing.json"), new MedVlp.Volumes.Transforms.TransformPipeline([new MedVlp.Volumes.Transforms.RandomFlip()]).ToJson());
                Rehash(package, "preprocessing.json");
                return ("preprocessing", "random transforms");
            case "file-path-escape":
                EditConfig(package, c =>
                {
                    var files = c["files"]!.AsObject();
                    var record = files["vocab.txt"]!.DeepClone();
                    files.Add("../../etc/passwd", record);
                });
                return ("files.../../etc/passwd", "expected a relative path inside the package");
            case "file-not-listed":
                EditConfig(package, c => c["files"]!.AsObject().Remove("preprocessing.json"));
                return ("preprocessing", "is not listed in \"files\"");
            case "bad-sha-syntax":
                EditConfig(package, c => c["files"]!["vocab.txt"]!["sha256"] = "xyz");
                return ("files.vocab.txt.sha256", "expected 64 lower-case hex digits");
            case "component-unknown":
                EditConfig(package, c => c["components"]!.AsArray().Add(new JsonObject { ["name"] = "language_model", ["frozen"] = true }));
                return ("components", "found \"language_model\"");
            default:
                throw new ArgumentOutOfRangeException(nameof(name), name, null);
        }
    }

    private static void EditConfig(string package, Action<JsonNode> edit)
    {
        var path = Path.Combine(package, "config.json");
        var node = JsonNode.Parse(File.ReadAllText(path))!;
        edit(node);
        File.WriteAllText(path, node.ToJsonString());
    }

    /// <summary>Records a file's new checksum, as an attacker (or a buggy writer) that controls the whole folder would.</summary>
    private static void Rehash(string package, string file)
    {
        var (sha, size) = PackageFiles.Hash(Path.Combine(package, file), null);
        EditConfig(package, c =>
        {
            c["files"]![file]!["sha256"] = sha;
            c["files"]![file]!["size"] = size;
        });
    }

    private static void ToVersion1(string package)
    {
        EditConfig(package, c =>
        {
            c["version"] = 1;
            c["architecture"] = "dual_encoder";
            c["model"]!.AsObject().Remove("type");
            c["tokenizer"] = new JsonObject { ["kind"] = "wordpiece", ["lower_case"] = true, ["file"] = "vocab.txt" };
            foreach (var key in new[] { "files", "components", "tokenizers", "default_tokenizer" })
            {
                c.AsObject().Remove(key);
            }
        });
    }

    private static void Truncate(string path, int bytes)
    {
        var all = File.ReadAllBytes(path);
        File.WriteAllBytes(path, all[..^bytes]);
    }

    /// <summary>Overwrites the first value of the alphabetically first tensor (logit_scale) in place.</summary>
    private static void PoisonFirstWeight(string path, float value)
    {
        var header = Safetensors.ReadHeader(path);
        var first = header.Entries.OrderBy(e => e.Begin).First();
        Assert.Equal("logit_scale", first.Name);
        using var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        stream.Position = header.DataOffset + first.Begin;
        stream.Write(BitConverter.GetBytes(value));
    }

    private static void MakeFifo(string path)
    {
        File.Delete(path);
        using var mkfifo = Process.Start("mkfifo", path);
        mkfifo.WaitForExit();
        Assert.Equal(0, mkfifo.ExitCode);
    }
}
