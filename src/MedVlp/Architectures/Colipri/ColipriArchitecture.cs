using MedVlp.Modeling;

namespace MedVlp.Architectures.Colipri;

/// <summary>The registry entry of COLIPRI (<c>colipri</c>).</summary>
internal static class ColipriArchitecture
{
    /// <summary>Name, sizes and builder.</summary>
    internal static ModelArchitecture Descriptor { get; } = new(
        ColipriConfig.ArchitectureName,
        typeof(ColipriConfig),
        "COLIPRI: Primus 3D ViT with rotary positions + attention pooling, BERT text encoder, report decoder, masked image modelling, opposite sentences",
        new Dictionary<string, Func<ArchitectureConfig>> { [ModelRegistry.Tiny] = () => ColipriConfig.Tiny(), [ModelRegistry.Full] = () => ColipriConfig.Full() },
        (config, device) => new ColipriModel((ColipriConfig)config, device));
}
