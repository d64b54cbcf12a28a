using static TorchSharp.torch;

namespace MedVlp.Packaging;

/// <summary>Options of <see cref="VisionLanguageModel.Load(string, ModelLoadOptions?)"/>.</summary>
public sealed record ModelLoadOptions
{
    /// <summary>Where to put the weights (CPU when null).</summary>
    public Device? Device { get; init; }

    /// <summary>
    /// The most parameters a package may declare; larger architectures are refused after building them on the
    /// <c>meta</c> device (no memory) and before any weight is allocated. Default 2 billion (8 GB of float32, which a
    /// 24 GiB machine holds together with the copy read from disk).
    /// </summary>
    public long MaxParameters { get; init; } = 2_000_000_000;
}

/// <summary>Options of <see cref="VisionLanguageModel.Save(string, ModelSaveOptions?)"/>.</summary>
public sealed record ModelSaveOptions
{
    /// <summary>
    /// Components stored by reference instead of copied: component name (for example <c>text_model</c>) to a safetensors
    /// file holding its weights under component-relative keys (written by <see cref="VisionLanguageModel.SaveComponent"/>,
    /// or a pretrained checkpoint such as a Hugging Face BERT). The package records the path relative to the package
    /// folder and the file's SHA-256; loading verifies both.
    /// </summary>
    public IReadOnlyDictionary<string, string> ComponentReferences { get; init; } = new Dictionary<string, string>();

    /// <summary>Store only the weights of trainable components: every frozen component must then be in
    /// <see cref="ComponentReferences"/>.</summary>
    public bool TrainableOnly { get; init; }

    /// <summary>Receives the name of each step as it starts (<c>weights</c>, <c>tokenizers</c>, <c>preprocessing</c>,
    /// <c>config</c>, <c>flush</c>, <c>replace</c>, <c>done</c>).</summary>
    public IProgress<string>? Progress { get; init; }
}
