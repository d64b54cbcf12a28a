using MedVlp.Data;
using MedVlp.Inference;
using MedVlp.Modeling;
using MedVlp.Packaging;
using MedVlp.Serialization;
using MedVlp.Text;
using MedVlp.Volumes;
using MedVlp.Volumes.Transforms;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp;

/// <summary>
/// A vision-language model together with everything inference needs: its architecture (built through
/// <see cref="ModelRegistry"/>), its tokenizers and the preprocessing pipeline it was trained with. Save it to a folder and
/// load it back with <see cref="Save"/> and <see cref="Load(string, ModelLoadOptions?)"/>; embed with <see cref="VolumeEncoder"/> and
/// <see cref="TextEncoder"/>; classify zero-shot with <see cref="CreateZeroShotClassifier"/>.
/// </summary>
/// <remarks>
/// <para>A model package (format version 2) is a folder with <c>config.json</c> (the <c>architecture</c> and its
/// configuration, the components and which are frozen or referenced, the tokenizers, and the SHA-256 and size of every
/// file), <c>model.safetensors</c> (the weights, Hugging Face names), <c>vocab.txt</c> (the default tokenizer; others
/// under <c>tokenizers/NAME/</c>) and <c>preprocessing.json</c> (the <see cref="TransformPipeline"/> applied to every
/// volume). Saves are atomic; loads verify every file before building anything. Version-1 packages still load.</para>
/// <para>Inference methods are safe to call from several threads at once. Do not embed while a trainer updates the
/// same model. The model owns native (libtorch) memory: dispose it.</para>
/// </remarks>
public sealed class VisionLanguageModel : IDisposable
{
    /// <summary>The <c>format</c> value of a model package's <c>config.json</c>.</summary>
    public const string PackageFormat = ModelPackage.Format;

    /// <summary>The package layout version this code writes (it reads 1 and 2).</summary>
    public const int PackageVersion = ModelPackage.Version;

    /// <summary>File names inside a model package.</summary>
    public const string ConfigFileName = ModelPackage.ConfigFile, WeightsFileName = ModelPackage.WeightsFile, PreprocessingFileName = ModelPackage.PreprocessingFile;

    private readonly Dictionary<string, TextTokenizer> _tokenizers;
    private bool _disposed;

    private VisionLanguageModel(CompositeModel module, IReadOnlyDictionary<string, TextTokenizer> tokenizers, string defaultTokenizer, TransformPipeline preprocessing, Device device)
    {
        Module = module;
        Config = module.Config;
        _tokenizers = new Dictionary<string, TextTokenizer>(tokenizers, StringComparer.Ordinal);
        DefaultTokenizerName = defaultTokenizer;
        Preprocessing = preprocessing;
        Device = device;
        Collator = new Collator(_tokenizers, defaultTokenizer);
        Module.eval();
        VolumeEncoder = new VolumeEncoder(this);
        TextEncoder = new TextEncoder(this);
    }

    /// <summary>Creates a model with freshly initialised weights (seeded, so the same seed gives the same weights on the CPU).</summary>
    /// <param name="config">The architecture and its sizes (for example <see cref="Clip3dConfig.Tiny"/>); its text vocabulary
    /// must be at least as large as the tokenizer's.</param>
    /// <param name="tokenizer">The tokenizer of the reports.</param>
    /// <param name="preprocessing">The deterministic pipeline that turns any volume into the encoder's input.</param>
    /// <param name="seed">Seed of the weight initialisation.</param>
    /// <param name="device">Where the weights live (CPU by default; CUDA works the same).</param>
    public static VisionLanguageModel Create(ArchitectureConfig config, TextTokenizer tokenizer, TransformPipeline preprocessing, int seed = 42, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(preprocessing);
        config.Validate();
        var tokenizers = new Dictionary<string, TextTokenizer> { [Collator.DefaultTokenizerName] = tokenizer };
        CheckCompatible(config, tokenizers, preprocessing);
        MedVlp.Losses.LibTorchRuntime.EnsureAvailable();
        var module = ModelRegistry.Create(config, new ModelCreateOptions { Seed = seed, Device = device });
        return new VisionLanguageModel(module, tokenizers, Collator.DefaultTokenizerName, preprocessing, device ?? CPU);
    }

    /// <summary>Wraps a model built from parts (through <see cref="ModelRegistry"/>), with its tokenizers and preprocessing.</summary>
    /// <param name="module">The model; the wrapper owns it from now on.</param>
    /// <param name="tokenizers">Tokenizers by name (a single-tokenizer model names its one <c>text</c>).</param>
    /// <param name="defaultTokenizer">The tokenizer used when none is named.</param>
    /// <param name="preprocessing">The deterministic preprocessing of images.</param>
    public static VisionLanguageModel FromModule(CompositeModel module, IReadOnlyDictionary<string, TextTokenizer> tokenizers, string defaultTokenizer, TransformPipeline preprocessing)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(tokenizers);
        ArgumentNullException.ThrowIfNull(preprocessing);
        if (!tokenizers.ContainsKey(defaultTokenizer))
        {
            throw new ArgumentException($"The default tokenizer \"{defaultTokenizer}\" is not among {string.Join(", ", tokenizers.Keys)}.", nameof(defaultTokenizer));
        }

        CheckCompatible(module.Config, tokenizers, preprocessing);
        var device = module.parameters().FirstOrDefault()?.device ?? CPU;
        return new VisionLanguageModel(module, tokenizers, defaultTokenizer, preprocessing, device);
    }

    /// <summary>Loads a model package folder written by <see cref="Save"/> (format version 1 or 2).</summary>
    /// <param name="directory">The package folder.</param>
    /// <param name="device">Where to put the weights (CPU by default).</param>
    /// <exception cref="ModelFormatException">Every failure to read the package: a missing, non-regular, truncated or
    /// changed file, an invalid or out-of-bounds configuration, weights that do not fit the architecture or are not
    /// finite, a vocabulary that does not fit. The exception names the file, the field and what was expected.</exception>
    public static VisionLanguageModel Load(string directory, Device? device = null) => Load(directory, new ModelLoadOptions { Device = device });

    /// <summary>Loads a model package folder with options (device, parameter budget).</summary>
    /// <exception cref="ModelFormatException">See <see cref="Load(string, Device?)"/>.</exception>
    public static VisionLanguageModel Load(string directory, ModelLoadOptions? options)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        options ??= new ModelLoadOptions();
        MedVlp.Losses.LibTorchRuntime.EnsureAvailable();
        var package = ModelPackage.Load(directory, options);
        return new VisionLanguageModel(package.Module, package.Tokenizers, package.DefaultTokenizer, package.Preprocessing, options.Device ?? CPU);
    }

    /// <summary>The registry name of the architecture (for example <c>clip3d</c>).</summary>
    public string Architecture => Config.Architecture;

    /// <summary>The architecture's configuration.</summary>
    public ArchitectureConfig Config { get; }

    /// <summary>The default tokenizer.</summary>
    public TextTokenizer Tokenizer => _tokenizers[DefaultTokenizerName];

    /// <summary>All tokenizers by name.</summary>
    public IReadOnlyDictionary<string, TextTokenizer> Tokenizers => _tokenizers;

    /// <summary>The name of the default tokenizer (<c>text</c> for single-tokenizer models).</summary>
    public string DefaultTokenizerName { get; }

    /// <summary>Builds model inputs (volumes, images, texts) the way this model's inference does.</summary>
    public Collator Collator { get; }

    /// <summary>The preprocessing applied to every volume before the image encoder (stored with the model).</summary>
    public TransformPipeline Preprocessing { get; }

    /// <summary>Where the weights live.</summary>
    public Device Device { get; }

    /// <summary>Embeds volumes.</summary>
    public VolumeEncoder VolumeEncoder { get; }

    /// <summary>Embeds report text.</summary>
    public TextEncoder TextEncoder { get; }

    /// <summary>The TorchSharp module (for training and custom use): components, freezing, parameters.</summary>
    public CompositeModel Module { get; }

    /// <summary>The model as an image encoder (embedding, linear probes, retrieval): every dual encoder, and image-only
    /// models such as LVM-Med.</summary>
    /// <exception cref="NotSupportedException">The architecture does not embed images.</exception>
    public IImageEncoder ImageEncoder => Module as IImageEncoder
        ?? throw new NotSupportedException($"Architecture \"{Architecture}\" does not embed images into vectors.");

    /// <summary>The model as a dual encoder (embedding and zero-shot classification).</summary>
    /// <exception cref="NotSupportedException">The architecture does not embed images and texts into one space.</exception>
    public IDualEncoder DualEncoder => Module as IDualEncoder
        ?? throw new NotSupportedException($"Architecture \"{Architecture}\" is not a dual encoder: it cannot embed images and texts into one space.");

    /// <summary>The logit scale: exp of the learned parameter, the multiplier of cosine similarities in the softmax.</summary>
    public double LogitScale
    {
        get
        {
            using var scale = DualEncoder.LogitScale();
            return scale.ToDouble();
        }
    }

    /// <summary>A zero-shot classifier over <paramref name="labels"/> (each with one or more prompts).</summary>
    public ZeroShotClassifier CreateZeroShotClassifier(IEnumerable<ZeroShotLabel> labels) => new(this, labels);

    /// <summary>
    /// Writes the model package into <paramref name="directory"/>, atomically: everything is written to a folder beside
    /// it, flushed to the disk, then swapped in, so a reader or a crash sees the old package or the new one, never a mix.
    /// </summary>
    /// <param name="directory">The package folder (created, or replaced if it holds a package).</param>
    /// <param name="options">Referenced components, trainable-only packages, progress.</param>
    /// <exception cref="IOException">The folder exists and holds something other than a model package.</exception>
    public void Save(string directory, ModelSaveOptions? options = null)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ModelPackage.Save(this, directory, options ?? new ModelSaveOptions());
    }

    /// <summary>Writes one component's weights (keys relative to the component) to a safetensors file, to be referenced by
    /// packages (<see cref="ModelSaveOptions.ComponentReferences"/>) instead of copied into each.</summary>
    public void SaveComponent(string component, string path)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentException.ThrowIfNullOrEmpty(component);
        ArgumentException.ThrowIfNullOrEmpty(path);
        ModelPackage.SaveComponent(Module, component, path);
    }

    /// <summary>Preprocesses volumes with <see cref="Preprocessing"/> (in parallel) and collates them into one
    /// (B x C x D x H x W) tensor on <see cref="Device"/>.</summary>
    internal Tensor PrepareVolumes(IReadOnlyList<Volume> volumes, CancellationToken cancellationToken = default)
    {
        var expected = (Module as IVolumeInputModel)?.ImageInputShape
            ?? throw new NotSupportedException($"Architecture \"{Architecture}\" does not take preprocessed volumes or images.");
        var prepared = new Volume[volumes.Count];
        Parallel.For(0, volumes.Count, new ParallelOptions { CancellationToken = cancellationToken }, n =>
        {
            var input = volumes[n] ?? throw new ArgumentException($"Volume {n} is null.", nameof(volumes));
            var output = Preprocessing.Apply(input);
            long[] shape = expected.Count == 3 ? [output.Frames, output.Shape.Y, output.Shape.X] : [output.Frames, output.Shape.Z, output.Shape.Y, output.Shape.X];
            if (expected.Count == 3 && output.Shape.Z != 1)
            {
                throw new InvalidOperationException(
                    $"The model's preprocessing turned a {input.Shape} volume into {output.Shape}; the 2D image encoder needs one slice (k = 1) of [{string.Join(", ", expected)}] (channels, j, i). Add an ExtractSlice step to {PreprocessingFileName}.");
            }

            if (!shape.SequenceEqual(expected))
            {
                throw new InvalidOperationException(
                    $"The model's preprocessing turned a {input.Shape} volume into {output.Shape} x {output.Frames} frame(s); the image encoder needs [{string.Join(", ", expected)}] (channels, k, j, i). Check {PreprocessingFileName}.");
            }

            prepared[n] = output;
        });
        return expected.Count == 3 ? Collator.CollateImages(prepared, expected, Device) : Collator.CollateVolumes(prepared, expected, Device);
    }

    /// <summary>Preprocesses volumes for training (see <see cref="Training.PreparedTrainingData"/>): one (B x C x S x S x S) tensor
    /// on <see cref="Device"/>, or (B x C x H x W) for a 2D image encoder.</summary>
    /// <param name="volumes">The volumes (any shape).</param>
    /// <param name="cancellationToken">Stops the preprocessing.</param>
    public Tensor PrepareVolumesForTraining(IReadOnlyList<Volume> volumes, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(volumes);
        ThrowIfDisposed();
        return PrepareVolumes(volumes, cancellationToken);
    }

        /// <summary>Tokenizes texts with the default tokenizer into (ids, mask) tensors on <see cref="Device"/>.</summary>
    internal (Tensor Ids, Tensor Mask) PrepareTexts(IReadOnlyList<string> texts)
    {
        var inputs = Collator.CollateTexts(texts, new TextCollation { MaxTokens = DualEncoder.MaxTextTokens }, Device);
        return (inputs.InputIds, inputs.AttentionMask);
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

    internal static void LoadWeights(nn.Module module, string path) => ModelPackage.LoadWeights(module, path);

    private static void CheckCompatible(ArchitectureConfig config, IReadOnlyDictionary<string, TextTokenizer> tokenizers, TransformPipeline preprocessing)
    {
        foreach (var (name, tokenizer) in tokenizers)
        {
            if (config.TokenizerVocabularySize(name) is { } rows && tokenizer.VocabularySize > rows)
            {
                throw new ArgumentException($"The tokenizer \"{name}\" has {tokenizer.VocabularySize} tokens but the model's vocabulary has only {rows}.", nameof(tokenizers));
            }
        }

        if (preprocessing.IsRandom)
        {
            throw new ArgumentException("The preprocessing pipeline contains random transforms; inference needs a deterministic pipeline (apply augmentation in training only).", nameof(preprocessing));
        }
    }
}
