using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using MedVlp.Data;
using MedVlp.Modeling;
using MedVlp.Serialization;
using MedVlp.Text;
using MedVlp.Volumes.Transforms;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Packaging;

/// <summary>What <see cref="ModelPackage.Load"/> reads from a package.</summary>
internal sealed record LoadedPackage(
    ArchitectureConfig Config,
    CompositeModel Module,
    IReadOnlyDictionary<string, TextTokenizer> Tokenizers,
    string DefaultTokenizer,
    TransformPipeline Preprocessing);

/// <summary>Writes and reads model packages (format versions 1 and 2).</summary>
internal static partial class ModelPackage
{
    public const string Format = "medvlp.vision_language_model";
    public const int Version = 2;
    public const string ConfigFile = "config.json", WeightsFile = "model.safetensors", PreprocessingFile = "preprocessing.json";
    private const long MaxJsonBytes = 16 << 20;
    private static readonly System.Text.UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
    private const long MaxVocabularyBytes = 64 << 20;

    // ---------------------------------------------------------------- save

    public static void Save(VisionLanguageModel model, string directory, ModelSaveOptions options)
    {
        var target = Path.GetFullPath(directory).TrimEnd(Path.DirectorySeparatorChar);
        CheckReplaceable(target);
        var module = model.Module;
        var references = ResolveReferences(module, target, options);
        var staging = PackageFiles.StagingPath(target);
        Directory.CreateDirectory(staging);
        try
        {
            var files = new List<string>();
            options.Progress?.Report("weights");
            using (var scope = NewDisposeScope())
            {
                var state = module.state_dict()
                    .Where(kv => !references.ContainsKey(CompositeModel.ComponentOf(kv.Key)))
                    .ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
                Safetensors.Save(Path.Combine(staging, WeightsFile), state, new Dictionary<string, string> { ["format"] = "pt", ["medvlp"] = Format, ["architecture"] = model.Architecture });
                files.Add(WeightsFile);
            }

            options.Progress?.Report("tokenizers");
            var tokenizers = new Dictionary<string, TokenizerManifest>(StringComparer.Ordinal);
            foreach (var (name, tokenizer) in model.Tokenizers)
            {
                if (tokenizer is not WordPieceTextTokenizer wordPiece)
                {
                    throw new NotSupportedException($"Model packages store WordPiece tokenizers; \"{name}\" is {tokenizer.Kind}.");
                }

                var folder = name == model.DefaultTokenizerName ? "" : $"tokenizers/{name}/";
                Directory.CreateDirectory(Path.Combine(staging, folder));
                tokenizer.Save(Path.Combine(staging, folder));
                var file = folder + WordPieceTextTokenizer.VocabularyFileName;
                files.Add(file);
                tokenizers[name] = new TokenizerManifest { Kind = tokenizer.Kind, LowerCase = wordPiece.Options.LowerCase, File = file, VocabularySize = tokenizer.VocabularySize };
            }

            options.Progress?.Report("preprocessing");
            model.Preprocessing.Save(Path.Combine(staging, PreprocessingFile));
            files.Add(PreprocessingFile);

            options.Progress?.Report("config");
            var counts = CountByComponent(module);
            var manifest = new PackageManifest
            {
                Format = Format,
                Version = Version,
                Architecture = model.Architecture,
                Model = model.Config.ToJsonNode(),
                Components = [.. module.ComponentNames.Select(c => new ComponentManifest
                {
                    Name = c,
                    Frozen = module.IsFrozen(c),
                    Parameters = counts.GetValueOrDefault(c),
                    Reference = references.GetValueOrDefault(c),
                })],
                Tokenizers = tokenizers,
                DefaultTokenizer = model.DefaultTokenizerName,
                Weights = WeightsFile,
                Preprocessing = PreprocessingFile,
                Files = new SortedDictionary<string, FileRecord>(files.ToDictionary(f => f, f =>
                {
                    var (sha, size) = PackageFiles.Hash(Path.Combine(staging, f), null);
                    return new FileRecord { Sha256 = sha, Size = size };
                }), StringComparer.Ordinal),
            };
            File.WriteAllText(Path.Combine(staging, ConfigFile), JsonSerializer.Serialize(manifest, ModelJson.Options));

            options.Progress?.Report("flush");
            foreach (var f in files.Append(ConfigFile))
            {
                PackageFiles.Flush(Path.Combine(staging, f));
            }

            foreach (var d in Directory.EnumerateDirectories(staging, "*", SearchOption.AllDirectories).Append(staging))
            {
                PackageFiles.FlushDirectory(d);
            }

            options.Progress?.Report("replace");
            PackageFiles.Replace(staging, target);
            options.Progress?.Report("done");
        }
        catch
        {
            if (Directory.Exists(staging))
            {
                Directory.Delete(staging, recursive: true);
            }

            throw;
        }
    }

    /// <summary>Writes one component's weights (component-relative keys) to a safetensors file, atomically.</summary>
    public static void SaveComponent(CompositeModel module, string component, string path)
    {
        if (!module.ComponentNames.Contains(component))
        {
            throw new ArgumentException($"The model has no component \"{component}\"; it has {string.Join(", ", module.ComponentNames)}.", nameof(component));
        }

        var full = Path.GetFullPath(path);
        var temp = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.saving-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            using (var scope = NewDisposeScope())
            {
                var state = module.state_dict().Where(kv => CompositeModel.ComponentOf(kv.Key) == component)
                    .ToDictionary(kv => kv.Key == component ? kv.Key : kv.Key[(component.Length + 1)..], kv => kv.Value, StringComparer.Ordinal);
                Safetensors.Save(temp, state, new Dictionary<string, string> { ["format"] = "pt", ["medvlp_component"] = component });
            }

            PackageFiles.Flush(temp);
            File.Move(temp, full, overwrite: true);
            PackageFiles.FlushDirectory(Path.GetDirectoryName(full)!);
        }
        finally
        {
            File.Delete(temp);
        }
    }

    private static void CheckReplaceable(string target)
    {
        if (File.Exists(target))
        {
            throw new IOException($"{target} is a file; a model package is a folder.");
        }

        if (Directory.Exists(target) && Directory.EnumerateFileSystemEntries(target).Any() && !IsPackage(target))
        {
            throw new IOException($"{target} exists and is not a MedVlp model package; refusing to replace it (choose an empty or new folder).");
        }
    }

    private static bool IsPackage(string folder)
    {
        try
        {
            var bytes = PackageFiles.ReadBounded(Path.Combine(folder, ConfigFile), null, MaxJsonBytes);
            return JsonNode.Parse(bytes)?["format"]?.GetValue<string>() == Format;
        }
        catch (Exception ex) when (ex is ModelFormatException or JsonException or InvalidOperationException)
        {
            return false;
        }
    }

    private static Dictionary<string, ComponentReference> ResolveReferences(CompositeModel module, string target, ModelSaveOptions options)
    {
        var result = new Dictionary<string, ComponentReference>(StringComparer.Ordinal);
        foreach (var (component, path) in options.ComponentReferences)
        {
            if (!module.ComponentNames.Contains(component))
            {
                throw new ArgumentException($"The model has no component \"{component}\"; it has {string.Join(", ", module.ComponentNames)}.", nameof(options));
            }

            var full = Path.GetFullPath(path);
            var header = Safetensors.ReadHeader(full);
            var expected = ExpectedKeys(module, component);
            var actual = header.Entries.ToDictionary(e => e.Name, e => e.Shape.ToArray(), StringComparer.Ordinal);
            if (!expected.Keys.Order(StringComparer.Ordinal).SequenceEqual(actual.Keys.Order(StringComparer.Ordinal), StringComparer.Ordinal)
                || expected.Any(kv => !kv.Value.SequenceEqual(actual[kv.Key])))
            {
                throw new ArgumentException($"{full} does not hold the weights of component \"{component}\" (keys or shapes differ).", nameof(options));
            }

            var (sha, size) = PackageFiles.Hash(full, null);
            result[component] = new ComponentReference { Path = Path.GetRelativePath(target, full).Replace('\\', '/'), Sha256 = sha, Size = size };
        }

        if (options.TrainableOnly)
        {
            var missing = module.FrozenComponents.Where(c => !result.ContainsKey(c)).ToArray();
            if (missing.Length > 0)
            {
                throw new ArgumentException($"A trainable-only package must reference every frozen component; {string.Join(", ", missing)} has no reference.", nameof(options));
            }

            foreach (var c in module.ComponentNames.Where(c => !module.IsFrozen(c) && result.ContainsKey(c)))
            {
                throw new ArgumentException($"Component \"{c}\" is trainable; a trainable-only package stores it.", nameof(options));
            }
        }

        return result;
    }

    private static Dictionary<string, long[]> ExpectedKeys(CompositeModel module, string component)
    {
        using var scope = NewDisposeScope();
        return module.state_dict().Where(kv => CompositeModel.ComponentOf(kv.Key) == component)
            .ToDictionary(kv => kv.Key == component ? kv.Key : kv.Key[(component.Length + 1)..], kv => kv.Value.shape, StringComparer.Ordinal);
    }

    private static Dictionary<string, long> CountByComponent(CompositeModel module)
    {
        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var (name, p) in module.named_parameters())
        {
            var c = CompositeModel.ComponentOf(name);
            counts[c] = counts.GetValueOrDefault(c) + p.numel();
        }

        return counts;
    }

    // ---------------------------------------------------------------- load

    public static LoadedPackage Load(string directory, ModelLoadOptions options)
    {
        if (!OperatingSystem.IsLinux())
        {
            PackageFiles.Recover(directory);
        }

        if (!Directory.Exists(directory))
        {
            throw new ModelFormatException(directory, null, "the model folder does not exist.");
        }

        var configPath = Path.Combine(directory, ConfigFile);
        if (!File.Exists(configPath) && !Directory.Exists(configPath))
        {
            throw new ModelFormatException(configPath, null, $"not a MedVlp model package: {ConfigFile} is missing.");
        }

        PackageManifest manifest;
        var configBytes = PackageFiles.ReadBounded(configPath, null, MaxJsonBytes);
        try
        {
            // System.Text.Json checks string values but transcodes property names lazily, so invalid UTF-8 in a name
            // would surface later as an InvalidOperationException deep inside; check the whole file up front.
            _ = StrictUtf8.GetCharCount(configBytes);
        }
        catch (System.Text.DecoderFallbackException ex)
        {
            throw new ModelFormatException(configPath, null, $"expected UTF-8 text, found an invalid byte sequence at offset {ex.Index}.", ex);
        }

        try
        {
            manifest = JsonSerializer.Deserialize<PackageManifest>(configBytes, ModelJson.Options)
                ?? throw new ModelFormatException(configPath, null, "the file is empty (null).");
        }
        catch (JsonException ex)
        {
            throw new ModelFormatException(configPath, ex.Path?.TrimStart('$', '.'), $"not a valid model configuration ({ex.Message}).", ex);
        }

        if (manifest.Format != Format)
        {
            throw new ModelFormatException(configPath, "format", $"expected \"{Format}\", found \"{manifest.Format}\".");
        }

        if (manifest.Version is < 1 or > Version)
        {
            throw new ModelFormatException(configPath, "version", $"this MedVlp reads package versions 1 to {Version}, found {manifest.Version}.");
        }

        return manifest.Version == 1 ? LoadVersion1(directory, configPath, manifest, options) : LoadVersion2(directory, configPath, manifest, options);
    }

    private static LoadedPackage LoadVersion1(string directory, string configPath, PackageManifest manifest, ModelLoadOptions options)
    {
        // Version 1 (MedVlp 0.1): one dual encoder ("dual_encoder", now "clip3d"), one WordPiece tokenizer, no checksums.
        if (manifest.Architecture is not (null or "dual_encoder" or Clip3dConfig.ArchitectureName))
        {
            throw new ModelFormatException(configPath, "architecture", $"expected \"dual_encoder\" in a version-1 package, found \"{manifest.Architecture}\".");
        }

        var config = ReadConfig(configPath, manifest.Model, Clip3dConfig.ArchitectureName);
        var tokenizerManifest = manifest.Tokenizer ?? throw new ModelFormatException(configPath, "tokenizer", "the tokenizer section is missing.");
        var tokenizer = LoadTokenizer(directory, configPath, "tokenizer", tokenizerManifest with { File = WordPieceTextTokenizer.VocabularyFileName });

        // Without checksums, a vocabulary cut short or replaced is caught by its size: version-1 packages were written
        // with the text vocabulary equal to the tokenizer's.
        var expected = config.TokenizerVocabularySize(Collator.DefaultTokenizerName);
        if (expected is { } rows && tokenizer.VocabularySize != rows)
        {
            throw new ModelFormatException(Path.Combine(directory, WordPieceTextTokenizer.VocabularyFileName), "vocabulary",
                $"expected {rows} tokens (the text encoder's vocab_size in {ConfigFile}), found {tokenizer.VocabularySize}: the file is truncated or belongs to another model.");
        }

        var tokenizers = new Dictionary<string, TextTokenizer> { [Collator.DefaultTokenizerName] = tokenizer };
        var preprocessing = LoadPreprocessing(Path.Combine(directory, PreprocessingFile));
        var sources = new List<WeightSource> { new(Path.Combine(directory, WeightsFile), "", null) };
        var module = BuildAndLoad(configPath, config, sources, FreezePolicy.None, options);
        return new LoadedPackage(config, module, tokenizers, Collator.DefaultTokenizerName, preprocessing);
    }

    private static LoadedPackage LoadVersion2(string directory, string configPath, PackageManifest manifest, ModelLoadOptions options)
    {
        if (string.IsNullOrEmpty(manifest.Architecture))
        {
            throw new ModelFormatException(configPath, "architecture", $"expected a registered architecture ({string.Join(", ", ModelRegistry.Names)}), found nothing.");
        }

        if (!ModelRegistry.TryGet(manifest.Architecture, out _))
        {
            throw new ModelFormatException(configPath, "architecture", $"expected a registered architecture ({string.Join(", ", ModelRegistry.Names)}), found \"{manifest.Architecture}\" (register it with ModelRegistry.Register before loading).");
        }

        var config = ReadConfig(configPath, manifest.Model, manifest.Architecture);

        // Integrity first: every file the package names is listed with its size and SHA-256, and matches.
        var files = manifest.Files ?? throw new ModelFormatException(configPath, "files", "the integrity section (SHA-256 and size of every file) is missing.");
        foreach (var (relative, record) in files)
        {
            VerifyFile(directory, configPath, relative, record.Sha256, record.Size, insidePackage: true);
        }

        string Listed(string? relative, string field)
        {
            if (string.IsNullOrEmpty(relative))
            {
                throw new ModelFormatException(configPath, field, "expected a file name, found nothing.");
            }

            return files.ContainsKey(relative) ? Path.Combine(directory, relative)
                : throw new ModelFormatException(configPath, field, $"\"{relative}\" is not listed in \"files\" with its SHA-256.");
        }

        if (manifest.Tokenizers is not { Count: > 0 } tokenizerManifests)
        {
            throw new ModelFormatException(configPath, "tokenizers", "expected at least one tokenizer.");
        }

        var tokenizers = new Dictionary<string, TextTokenizer>(StringComparer.Ordinal);
        foreach (var (name, t) in tokenizerManifests)
        {
            _ = Listed(t.File, $"tokenizers.{name}.file");
            var tokenizer = LoadTokenizer(directory, configPath, $"tokenizers.{name}", t);
            var path = Path.Combine(directory, t.File!);
            if (t.VocabularySize is not { } recorded || recorded != tokenizer.VocabularySize)
            {
                throw new ModelFormatException(path, "vocabulary", $"expected {t.VocabularySize?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "a recorded vocabulary_size"} tokens (tokenizers.{name}.vocabulary_size in {ConfigFile}), found {tokenizer.VocabularySize}.");
            }

            if (config.TokenizerVocabularySize(name) is { } rows && tokenizer.VocabularySize > rows)
            {
                throw new ModelFormatException(path, "vocabulary", $"expected at most {rows} tokens (the model's vocabulary for \"{name}\"), found {tokenizer.VocabularySize}.");
            }

            tokenizers[name] = tokenizer;
        }

        var defaultTokenizer = manifest.DefaultTokenizer ?? Collator.DefaultTokenizerName;
        if (!tokenizers.ContainsKey(defaultTokenizer))
        {
            throw new ModelFormatException(configPath, "default_tokenizer", $"expected one of {string.Join(", ", tokenizers.Keys)}, found \"{defaultTokenizer}\".");
        }

        var preprocessing = LoadPreprocessing(Listed(manifest.Preprocessing, "preprocessing"));
        var sources = new List<WeightSource> { new(Listed(manifest.Weights, "weights"), "", null) };
        var frozen = new List<string>();
        foreach (var (c, index) in (manifest.Components ?? []).Select((c, i) => (c, i)))
        {
            var field = $"components[{index}]";
            if (string.IsNullOrEmpty(c.Name))
            {
                throw new ModelFormatException(configPath, field + ".name", "expected a component name, found nothing.");
            }

            if (c.Frozen)
            {
                frozen.Add(c.Name);
            }

            if (c.Reference is { } r)
            {
                var path = VerifyFile(directory, configPath, r.Path, r.Sha256, r.Size, insidePackage: false, field + ".reference");
                sources.Add(new WeightSource(path, c.Name, c.Name));
            }
        }

        var module = BuildAndLoad(configPath, config, sources, new FreezePolicy(frozen), options);
        return new LoadedPackage(config, module, tokenizers, defaultTokenizer, preprocessing);
    }

    /// <summary>A safetensors file and the component prefix its keys get (empty: full state-dict keys).</summary>
    private sealed record WeightSource(string Path, string Prefix, string? Component)
    {
        public string Key(string name) => Prefix.Length == 0 ? name : name == Prefix ? name : $"{Prefix}.{name}";
    }

    private static ArchitectureConfig ReadConfig(string configPath, JsonObject? model, string architecture)
    {
        if (model is null)
        {
            throw new ModelFormatException(configPath, "model", "the architecture section is missing.");
        }

        try
        {
            var config = ArchitectureConfig.FromJsonNode(model, architecture);
            config.Validate();
            return config;
        }
        catch (ArgumentException ex)
        {
            var field = ex.ParamName is null ? "model" : ex.ParamName.StartsWith("model", StringComparison.Ordinal) ? ex.ParamName : "model." + ex.ParamName;
            throw new ModelFormatException(configPath, field, StripParamName(ex), ex);
        }
    }

    private static string StripParamName(ArgumentException ex)
    {
        var suffix = ex.ParamName is null ? null : $" (Parameter '{ex.ParamName}')";
        return suffix is not null && ex.Message.EndsWith(suffix, StringComparison.Ordinal) ? ex.Message[..^suffix.Length] : ex.Message;
    }

    /// <summary>Checks a listed file: a safe relative path, a regular file, the recorded size, the recorded SHA-256.</summary>
    private static string VerifyFile(string directory, string configPath, string? relative, string? sha256, long size, bool insidePackage, string? field = null)
    {
        field ??= $"files.{relative}";
        if (string.IsNullOrEmpty(relative) || Path.IsPathRooted(relative) || relative.Contains('\\', StringComparison.Ordinal)
            || (insidePackage && relative.Split('/').Any(s => s is ".." or "." or "")))
        {
            throw new ModelFormatException(configPath, field, $"expected a relative path{(insidePackage ? " inside the package" : "")}, found \"{relative}\".");
        }

        if (sha256 is null || !Sha256Pattern().IsMatch(sha256))
        {
            throw new ModelFormatException(configPath, field + ".sha256", $"expected 64 lower-case hex digits, found \"{sha256}\".");
        }

        var path = Path.Combine(directory, relative);
        var length = PackageFiles.RequireRegularFile(path, field);
        if (insidePackage)
        {
            var root = Path.GetFullPath(directory).TrimEnd(Path.DirectorySeparatorChar) + Path.DirectorySeparatorChar;
            var resolved = new FileInfo(path).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? Path.GetFullPath(path);
            if (!resolved.StartsWith(root, StringComparison.Ordinal))
            {
                throw new ModelFormatException(path, field, $"expected a file inside the package folder, found a link to {resolved}.");
            }
        }

        if (length != size)
        {
            throw new ModelFormatException(path, "size", $"expected {size} bytes (recorded in {ConfigFile}), found {length}: the file was truncated, replaced or changed after the package was saved.");
        }

        var (actual, _) = PackageFiles.Hash(path, field);
        if (actual != sha256)
        {
            throw new ModelFormatException(path, "sha256", $"expected {sha256} (recorded in {ConfigFile}), found {actual}: the file was replaced or changed after the package was saved.");
        }

        return path;
    }

    private static WordPieceTextTokenizer LoadTokenizer(string directory, string configPath, string field, TokenizerManifest manifest)
    {
        if (manifest.Kind != "wordpiece")
        {
            throw new ModelFormatException(configPath, field + ".kind", $"expected \"wordpiece\", found \"{manifest.Kind}\".");
        }

        var path = Path.Combine(directory, manifest.File ?? WordPieceTextTokenizer.VocabularyFileName);
        var bytes = PackageFiles.ReadBounded(path, "vocabulary", MaxVocabularyBytes);
        try
        {
            using var stream = new MemoryStream(bytes, writable: false);
            return WordPieceTextTokenizer.FromStream(stream, new WordPieceTokenizerOptions { LowerCase = manifest.LowerCase });
        }
        catch (InvalidDataException ex)
        {
            throw new ModelFormatException(path, "vocabulary", ex.Message.Replace("<stream>: ", "", StringComparison.Ordinal), ex);
        }
    }

    private static TransformPipeline LoadPreprocessing(string path)
    {
        var bytes = PackageFiles.ReadBounded(path, "preprocessing", MaxJsonBytes);
        TransformPipeline pipeline;
        try
        {
            pipeline = TransformPipeline.FromJson(System.Text.Encoding.UTF8.GetString(bytes));
        }
        catch (Exception ex) when (ex is MedVlp.Volumes.VolumeFormatException or FormatException or JsonException or ArgumentException or InvalidOperationException or NotSupportedException)
        {
            throw new ModelFormatException(path, "preprocessing", $"not a valid preprocessing pipeline: {ex.Message}", ex);
        }

        if (pipeline.IsRandom)
        {
            throw new ModelFormatException(path, "preprocessing", "the pipeline contains random transforms; inference needs a deterministic pipeline (apply augmentation in training only).");
        }

        return pipeline;
    }

    /// <summary>
    /// Checks the weight files' headers against the architecture built on the <c>meta</c> device (no memory): the
    /// parameter budget, then every key, shape and dtype. Only then builds the model for real and copies the weights,
    /// refusing non-finite values.
    /// </summary>
    private static CompositeModel BuildAndLoad(string configPath, ArchitectureConfig config, IReadOnlyList<WeightSource> sources, FreezePolicy freeze, ModelLoadOptions options)
    {
        // TorchSharp builds some modules (Embedding) on the CPU before moving them to the meta device, so a meta build is
        // only free once the architecture's own estimate is within the budget.
        if (config.EstimateParameters() is { } estimate && estimate > options.MaxParameters)
        {
            throw new ModelFormatException(configPath, "model", $"the architecture has {estimate:N0} parameters; the budget (ModelLoadOptions.MaxParameters) is {options.MaxParameters:N0}.");
        }

        var headers = sources.Select(s => (Source: s, Header: ReadHeader(s.Path))).ToArray();
        Dictionary<string, (long[] Shape, ScalarType Type)> expected;
        using (var meta = ModelRegistry.Create(config, new ModelCreateOptions { Device = new Device(DeviceType.META) }))
        {
            var total = meta.CountParameters().Total;
            if (total > options.MaxParameters)
            {
                throw new ModelFormatException(configPath, "model", $"the architecture has {total:N0} parameters; the budget (ModelLoadOptions.MaxParameters) is {options.MaxParameters:N0}.");
            }

            using var scope = NewDisposeScope();
            expected = meta.state_dict().ToDictionary(kv => kv.Key, kv => (kv.Value.shape, kv.Value.dtype), StringComparer.Ordinal);
            var componentNames = meta.ComponentNames;
            foreach (var name in freeze.FrozenComponents)
            {
                if (!componentNames.Contains(name))
                {
                    throw new ModelFormatException(configPath, "components", $"expected components of {config.Architecture} ({string.Join(", ", componentNames)}), found \"{name}\".");
                }
            }
        }

        var seen = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (source, header) in headers)
        {
            foreach (var entry in header.Entries)
            {
                var key = source.Key(entry.Name);
                if (source.Component is { } c && CompositeModel.ComponentOf(key) != c)
                {
                    throw new ModelFormatException(source.Path, entry.Name, $"expected weights of component \"{c}\" only.");
                }

                if (!seen.TryAdd(key, source.Path))
                {
                    throw new ModelFormatException(source.Path, entry.Name, $"the tensor is also in {seen[key]}.");
                }

                if (expected.TryGetValue(key, out var want))
                {
                    if (!entry.Shape.SequenceEqual(want.Shape))
                    {
                        throw new ModelFormatException(source.Path, entry.Name, $"shape [{string.Join(", ", entry.Shape)}] does not match the architecture's [{string.Join(", ", want.Shape)}] ({ConfigFile}).");
                    }

                    if (DTypeOf(want.Type) != entry.DType)
                    {
                        throw new ModelFormatException(source.Path, entry.Name, $"dtype {entry.DType} does not match the architecture's {DTypeOf(want.Type)}.");
                    }
                }
            }
        }

        var missing = expected.Keys.Where(k => !seen.ContainsKey(k)).ToArray();
        var unexpected = seen.Keys.Where(k => !expected.ContainsKey(k)).ToArray();
        if (missing.Length > 0 || unexpected.Length > 0)
        {
            throw new ModelFormatException(sources[0].Path, null,
                $"the weights do not match the architecture in {ConfigFile}: missing [{List(missing)}], unexpected [{List(unexpected)}].");
        }

        var module = ModelRegistry.Create(config);
        try
        {
            foreach (var source in sources)
            {
                CopyWeights(module, source);
            }

            module.ClearFingerprints();
            module.Apply(freeze);
            if (options.Device is { } device && device.type != DeviceType.CPU)
            {
                module.to(device);
            }

            module.eval();
            return module;
        }
        catch
        {
            module.Dispose();
            throw;
        }
    }

    private static SafetensorsHeader ReadHeader(string path)
    {
        PackageFiles.RequireRegularFile(path, "weights");
        return Safetensors.ReadHeader(path);
    }

    private static void CopyWeights(CompositeModel module, WeightSource source)
    {
        var loaded = Safetensors.Load(source.Path);
        try
        {
            using var scope = NewDisposeScope();
            var targets = module.state_dict();
            using var noGrad = no_grad();
            foreach (var (name, tensor) in loaded)
            {
                if (tensor.is_floating_point() && !tensor.isfinite().all().ToBoolean())
                {
                    var bad = tensor.isfinite().logical_not().sum().ToInt64();
                    throw new ModelFormatException(source.Path, name, $"expected finite weights, found {bad} NaN or infinite value(s).");
                }

                targets[source.Key(name)].copy_(tensor);
            }
        }
        finally
        {
            foreach (var t in loaded.Values)
            {
                t.Dispose();
            }
        }
    }

    /// <summary>Copies a safetensors file into a module by full state-dict key (for tests and golden files).</summary>
    public static void LoadWeights(nn.Module module, string path)
    {
        var header = ReadHeader(path);
        using (var scope = NewDisposeScope())
        {
            var expected = module.state_dict();
            var names = header.Entries.Select(e => e.Name).ToHashSet(StringComparer.Ordinal);
            var missing = expected.Keys.Where(k => !names.Contains(k)).ToArray();
            var unexpected = names.Where(k => !expected.ContainsKey(k)).ToArray();
            if (missing.Length > 0 || unexpected.Length > 0)
            {
                throw new ModelFormatException(path, null, $"the weights do not match the module: missing [{List(missing)}], unexpected [{List(unexpected)}].");
            }

            foreach (var e in header.Entries)
            {
                if (!e.Shape.SequenceEqual(expected[e.Name].shape))
                {
                    throw new ModelFormatException(path, e.Name, $"shape [{string.Join(", ", e.Shape)}] does not match the module's [{string.Join(", ", expected[e.Name].shape)}].");
                }
            }
        }

        var loaded = Safetensors.Load(path);
        try
        {
            using var scope = NewDisposeScope();
            var targets = module.state_dict();
            using var noGrad = no_grad();
            foreach (var (name, tensor) in loaded)
            {
                targets[name].copy_(tensor);
            }
        }
        finally
        {
            foreach (var t in loaded.Values)
            {
                t.Dispose();
            }
        }
    }

    private static string List(string[] keys) => string.Join(", ", keys.Take(5)) + (keys.Length > 5 ? $", ... ({keys.Length} in all)" : "");

    private static SafetensorsDType DTypeOf(ScalarType type) => type switch
    {
        ScalarType.Bool => SafetensorsDType.Bool,
        ScalarType.Byte => SafetensorsDType.U8,
        ScalarType.Int8 => SafetensorsDType.I8,
        ScalarType.Int16 => SafetensorsDType.I16,
        ScalarType.Int32 => SafetensorsDType.I32,
        ScalarType.Int64 => SafetensorsDType.I64,
        ScalarType.Float16 => SafetensorsDType.F16,
        ScalarType.BFloat16 => SafetensorsDType.BF16,
        ScalarType.Float64 => SafetensorsDType.F64,
        _ => SafetensorsDType.F32,
    };

    [GeneratedRegex("^[0-9a-f]{64}$")]
    private static partial Regex Sha256Pattern();
}
