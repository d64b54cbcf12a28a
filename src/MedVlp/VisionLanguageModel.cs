using System.Text.Json;
using MedVlp.Inference;
using MedVlp.Modeling;
using MedVlp.Serialization;
using MedVlp.Text;
using MedVlp.Volumes;
using MedVlp.Volumes.Transforms;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp;

/// <summary>
/// A trained (or freshly initialised) dual-encoder vision-language model together with everything inference needs:
/// the tokenizer and the preprocessing pipeline it was trained with. Save it to a folder and load it back with
/// <see cref="Save"/> and <see cref="Load"/>; embed with <see cref="VolumeEncoder"/> and <see cref="TextEncoder"/>;
/// classify zero-shot with <see cref="CreateZeroShotClassifier"/>.
/// </summary>
/// <remarks>
/// <para>A model package is a folder with <c>config.json</c> (format, architecture sizes, tokenizer settings),
/// <c>model.safetensors</c> (the weights, Hugging Face names), <c>vocab.txt</c> (the tokenizer vocabulary) and
/// <c>preprocessing.json</c> (the <see cref="TransformPipeline"/> applied to every volume before the encoder).</para>
/// <para>Inference methods are safe to call from several threads at once. Do not embed while a trainer updates the
/// same model. The model owns native (libtorch) memory: dispose it.</para>
/// </remarks>
public sealed class VisionLanguageModel : IDisposable
{
    /// <summary>The <c>format</c> value of a model package's <c>config.json</c>.</summary>
    public const string PackageFormat = "medvlp.vision_language_model";

    /// <summary>The package layout version this code writes.</summary>
    public const int PackageVersion = 1;

    /// <summary>File names inside a model package.</summary>
    public const string ConfigFileName = "config.json", WeightsFileName = "model.safetensors", PreprocessingFileName = "preprocessing.json";

    private static readonly Lock InitializationLock = new();
    private bool _disposed;

    private VisionLanguageModel(VisionLanguageModelConfig config, DualEncoderModel module, TextTokenizer tokenizer, TransformPipeline preprocessing, Device device)
    {
        Config = config;
        Module = module;
        Tokenizer = tokenizer;
        Preprocessing = preprocessing;
        Device = device;
        Module.eval();
        VolumeEncoder = new VolumeEncoder(this);
        TextEncoder = new TextEncoder(this);
    }

    /// <summary>Creates a model with freshly initialised weights (seeded, so the same seed gives the same weights on the CPU).</summary>
    /// <param name="config">Sizes; the text vocabulary must be at least as large as the tokenizer's.</param>
    /// <param name="tokenizer">The tokenizer of the reports.</param>
    /// <param name="preprocessing">The deterministic pipeline that turns any volume into the encoder's cubic input.</param>
    /// <param name="seed">Seed of the weight initialisation.</param>
    /// <param name="device">Where the weights live (CPU by default; CUDA works the same).</param>
    public static VisionLanguageModel Create(VisionLanguageModelConfig config, TextTokenizer tokenizer, TransformPipeline preprocessing, int seed = 42, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(preprocessing);
        config.Validate();
        CheckCompatible(config, tokenizer, preprocessing, null);
        device ??= CPU;
        DualEncoderModel module;
        // libtorch's default generator is process-wide: hold it while seeding and initialising, so that concurrent
        // Create calls cannot interleave their draws. (Other code drawing from it at the same time still can.)
        lock (InitializationLock)
        {
            random.manual_seed(seed);
            module = new DualEncoderModel(config);
        }

        if (device.type != DeviceType.CPU)
        {
            module.to(device);
        }

        return new VisionLanguageModel(config, module, tokenizer, preprocessing, device);
    }

    /// <summary>Loads a model package folder written by <see cref="Save"/>.</summary>
    /// <param name="directory">The package folder.</param>
    /// <param name="device">Where to put the weights (CPU by default).</param>
    /// <exception cref="ModelFormatException">A file of the package is missing a field, inconsistent, or does not fit the architecture.</exception>
    public static VisionLanguageModel Load(string directory, Device? device = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        if (!Directory.Exists(directory))
        {
            throw new DirectoryNotFoundException($"Model folder {directory} does not exist.");
        }

        var configPath = Path.Combine(directory, ConfigFileName);
        if (!File.Exists(configPath))
        {
            throw new FileNotFoundException($"{directory} is not a MedVlp model package: {ConfigFileName} is missing.", configPath);
        }

        ModelPackageManifest manifest;
        try
        {
            manifest = JsonSerializer.Deserialize<ModelPackageManifest>(File.ReadAllText(configPath), VisionLanguageModelConfig.JsonOptions)
                ?? throw new ModelFormatException(configPath, null, "the file is empty (null).");
        }
        catch (JsonException ex)
        {
            throw new ModelFormatException(configPath, ex.Path, $"not a valid model configuration ({ex.Message}).", ex);
        }

        if (manifest.Format != PackageFormat)
        {
            throw new ModelFormatException(configPath, "format", $"expected \"{PackageFormat}\", found \"{manifest.Format}\".");
        }

        if (manifest.Version is < 1 or > PackageVersion)
        {
            throw new ModelFormatException(configPath, "version", $"this MedVlp reads package versions 1 to {PackageVersion}, found {manifest.Version}.");
        }

        if (manifest.Model is null)
        {
            throw new ModelFormatException(configPath, "model", "the architecture section is missing.");
        }

        try
        {
            manifest.Model.Validate();
        }
        catch (ArgumentException ex)
        {
            throw new ModelFormatException(configPath, "model", ex.Message, ex);
        }

        if (manifest.Tokenizer?.Kind != "wordpiece")
        {
            throw new ModelFormatException(configPath, "tokenizer.kind", $"expected \"wordpiece\", found \"{manifest.Tokenizer?.Kind}\".");
        }

        var tokenizer = WordPieceTextTokenizer.FromVocabularyFile(Path.Combine(directory, WordPieceTextTokenizer.VocabularyFileName),
            new WordPieceTokenizerOptions { LowerCase = manifest.Tokenizer.LowerCase });
        var preprocessingPath = Path.Combine(directory, PreprocessingFileName);
        if (!File.Exists(preprocessingPath))
        {
            throw new FileNotFoundException($"{directory} lacks {PreprocessingFileName}, the preprocessing the model was trained with.", preprocessingPath);
        }

        var preprocessing = TransformPipeline.Load(preprocessingPath);
        CheckCompatible(manifest.Model, tokenizer, preprocessing, configPath);
        device ??= CPU;
        var module = new DualEncoderModel(manifest.Model);
        try
        {
            LoadWeights(module, Path.Combine(directory, WeightsFileName));
            if (device.type != DeviceType.CPU)
            {
                module.to(device);
            }
        }
        catch
        {
            module.Dispose();
            throw;
        }

        return new VisionLanguageModel(manifest.Model, module, tokenizer, preprocessing, device);
    }

    /// <summary>The architecture.</summary>
    public VisionLanguageModelConfig Config { get; }

    /// <summary>The tokenizer of the text encoder.</summary>
    public TextTokenizer Tokenizer { get; }

    /// <summary>The preprocessing applied to every volume before the volume encoder (stored with the model).</summary>
    public TransformPipeline Preprocessing { get; }

    /// <summary>Where the weights live.</summary>
    public Device Device { get; }

    /// <summary>Embeds volumes.</summary>
    public VolumeEncoder VolumeEncoder { get; }

    /// <summary>Embeds report text.</summary>
    public TextEncoder TextEncoder { get; }

    /// <summary>The learned inverse temperature exp(logit_scale) used to turn cosine similarities into logits.</summary>
    public double LogitScale
    {
        get
        {
            using var scale = Module.ScaleFactor();
            return scale.ToDouble();
        }
    }

    /// <summary>The TorchSharp module (for training and custom use).</summary>
    public DualEncoderModel Module { get; }

    /// <summary>A zero-shot classifier over <paramref name="labels"/> (each with one or more prompts).</summary>
    public ZeroShotClassifier CreateZeroShotClassifier(IEnumerable<ZeroShotLabel> labels) => new(this, labels);

    /// <summary>Writes the model package into <paramref name="directory"/> (created if needed; files are overwritten).</summary>
    public void Save(string directory)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentException.ThrowIfNullOrEmpty(directory);
        Directory.CreateDirectory(directory);
        var manifest = new ModelPackageManifest
        {
            Format = PackageFormat,
            Version = PackageVersion,
            Architecture = "dual_encoder",
            Model = Config,
            Tokenizer = new TokenizerManifest
            {
                Kind = Tokenizer.Kind,
                LowerCase = Tokenizer is not WordPieceTextTokenizer w || w.Options.LowerCase,
                File = WordPieceTextTokenizer.VocabularyFileName,
            },
            Weights = WeightsFileName,
            Preprocessing = PreprocessingFileName,
        };
        File.WriteAllText(Path.Combine(directory, ConfigFileName), JsonSerializer.Serialize(manifest, VisionLanguageModelConfig.JsonOptions));
        Tokenizer.Save(directory);
        Preprocessing.Save(Path.Combine(directory, PreprocessingFileName));
        using var scope = NewDisposeScope();
        var state = Module.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
        Safetensors.Save(Path.Combine(directory, WeightsFileName), state, new Dictionary<string, string> { ["format"] = "pt", ["medvlp"] = PackageFormat });
    }

    /// <summary>Preprocesses volumes with <see cref="Preprocessing"/> (in parallel) into one (B x 1 x S x S x S) tensor on <see cref="Device"/>.</summary>
    internal Tensor PrepareVolumes(IReadOnlyList<Volume> volumes, CancellationToken cancellationToken = default)
    {
        var size = Config.Volume.InputSize;
        var voxels = (long)size * size * size;
        var batch = new float[volumes.Count * voxels];
        Parallel.For(0, volumes.Count, new ParallelOptions { CancellationToken = cancellationToken }, n =>
        {
            var input = volumes[n] ?? throw new ArgumentException($"Volume {n} is null.", nameof(volumes));
            var prepared = Preprocessing.Apply(input);
            if (prepared.Shape != new VolumeShape(size, size, size) || prepared.Frames != 1)
            {
                throw new InvalidOperationException(
                    $"The model's preprocessing turned a {input.Shape} volume into {prepared.Shape} x {prepared.Frames} frame(s); the encoder needs {size}^3 with one frame. Check {PreprocessingFileName}.");
            }

            prepared.GetFrame(0).CopyTo(batch.AsSpan((int)(n * voxels), (int)voxels));
        });
        var cpu = tensor(batch, [volumes.Count, 1, size, size, size]);
        if (Device.type == DeviceType.CPU)
        {
            return cpu;
        }

        using (cpu)
        {
            return cpu.to(Device);
        }
    }

    /// <summary>Preprocesses volumes for training (see <see cref="Training.PreparedTrainingData"/>): one (B x 1 x S x S x S) tensor on <see cref="Device"/>.</summary>
    /// <param name="volumes">The volumes (any shape).</param>
    /// <param name="cancellationToken">Stops the preprocessing.</param>
    public Tensor PrepareVolumesForTraining(IReadOnlyList<Volume> volumes, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(volumes);
        ThrowIfDisposed();
        return PrepareVolumes(volumes, cancellationToken);
    }

    /// <summary>Tokenizes texts into (ids, mask) tensors on <see cref="Device"/>.</summary>
    internal (Tensor Ids, Tensor Mask) PrepareTexts(IReadOnlyList<string> texts)
    {
        var batch = Tokenizer.EncodeBatch(texts, Config.MaxTextTokens);
        var ids = tensor(batch.Ids.ToArray(), [batch.BatchSize, batch.SequenceLength], device: Device);
        var mask = tensor(batch.AttentionMask.ToArray(), [batch.BatchSize, batch.SequenceLength], device: Device);
        return (ids, mask);
    }

    internal void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    /// <summary>Releases the weights.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        Module.Dispose();
    }

    private static void CheckCompatible(VisionLanguageModelConfig config, TextTokenizer tokenizer, TransformPipeline preprocessing, string? path)
    {
        if (tokenizer.VocabularySize > config.Text.VocabSize)
        {
            var problem = $"the tokenizer has {tokenizer.VocabularySize} tokens but the text encoder's vocabulary has only {config.Text.VocabSize}.";
            throw path is null ? new ArgumentException(problem, nameof(tokenizer)) : new ModelFormatException(path, "model.text.vocab_size", problem);
        }

        if (preprocessing.IsRandom)
        {
            var problem = "the preprocessing pipeline contains random transforms; inference needs a deterministic pipeline (apply augmentation in training only).";
            throw path is null ? new ArgumentException(problem, nameof(preprocessing)) : new ModelFormatException(path, PreprocessingFileName, problem);
        }
    }

    internal static void LoadWeights(TorchSharp.torch.nn.Module module, string path)
    {
        var loaded = Safetensors.Load(path);
        try
        {
            var expected = module.state_dict();
            var missing = expected.Keys.Where(k => !loaded.ContainsKey(k)).ToArray();
            var unexpected = loaded.Keys.Where(k => !expected.ContainsKey(k)).ToArray();
            if (missing.Length > 0 || unexpected.Length > 0)
            {
                throw new ModelFormatException(path, null,
                    $"the weights do not match the architecture in {ConfigFileName}: missing [{string.Join(", ", missing.Take(5))}{(missing.Length > 5 ? ", ..." : "")}], unexpected [{string.Join(", ", unexpected.Take(5))}{(unexpected.Length > 5 ? ", ..." : "")}].");
            }

            using var noGrad = no_grad();
            foreach (var (name, target) in expected)
            {
                var source = loaded[name];
                if (!source.shape.SequenceEqual(target.shape))
                {
                    throw new ModelFormatException(path, name, $"shape [{string.Join(", ", source.shape)}] does not match the architecture's [{string.Join(", ", target.shape)}].");
                }

                if (source.dtype != target.dtype)
                {
                    throw new ModelFormatException(path, name, $"dtype {source.dtype} does not match the architecture's {target.dtype}.");
                }

                target.copy_(source);
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
}

/// <summary>The <c>config.json</c> of a model package.</summary>
internal sealed record ModelPackageManifest
{
    public string? Format { get; init; }

    public int Version { get; init; }

    public string? Architecture { get; init; }

    public VisionLanguageModelConfig? Model { get; init; }

    public TokenizerManifest? Tokenizer { get; init; }

    public string? Weights { get; init; }

    public string? Preprocessing { get; init; }
}

/// <summary>Tokenizer settings in a model package.</summary>
internal sealed record TokenizerManifest
{
    public string? Kind { get; init; }

    public bool LowerCase { get; init; } = true;

    public string? File { get; init; }
}
