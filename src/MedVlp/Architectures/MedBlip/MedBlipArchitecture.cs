using MedVlp.Modeling;

namespace MedVlp.Architectures.MedBlip;

/// <summary>The registry entry of MedBLIP (<c>medblip</c>).</summary>
internal static class MedBlipArchitecture
{
    /// <summary>Name, sizes and builder.</summary>
    internal static ModelArchitecture Descriptor { get; } = new(
        MedBlipConfig.ArchitectureName,
        typeof(MedBlipConfig),
        "MedBLIP: 3D patch embedding + frozen EVA ViT, MedQFormer (BLIP-2 Q-Former), ITC, frozen GPT-2-layout language model",
        new Dictionary<string, Func<ArchitectureConfig>> { [ModelRegistry.Tiny] = () => MedBlipConfig.Tiny(), [ModelRegistry.Full] = MedBlipConfig.Full },
        (config, device) => new MedBlipModel((MedBlipConfig)config, device));
}
