using MedVlp.Modeling;

namespace MedVlp.Architectures.Prior;

/// <summary>The registry entry of PRIOR (<c>prior</c>).</summary>
internal static class PriorArchitecture
{
    /// <summary>Name, sizes and builder.</summary>
    internal static ModelArchitecture Descriptor { get; } = new(
        PriorConfig.ArchitectureName,
        typeof(PriorConfig),
        "PRIOR: ResNet-50 (attention pooling, 7x7 local tokens) + BERT sentences, local alignment, prototype bank, image and report reconstruction; 2D or 3D",
        new Dictionary<string, Func<ArchitectureConfig>> { [ModelRegistry.Tiny] = () => PriorConfig.Tiny(), [ModelRegistry.Full] = () => PriorConfig.Full() },
        (config, device) => new PriorModel((PriorConfig)config, device));
}
