using MedVlp.Modeling;

namespace MedVlp.Architectures.LvmMed;

/// <summary>The registry entry of LVM-Med (<c>lvmmed</c>).</summary>
internal static class LvmMedArchitecture
{
    /// <summary>Name, sizes and builder.</summary>
    internal static ModelArchitecture Descriptor { get; } = new(
        LvmMedConfig.ArchitectureName,
        typeof(LvmMedConfig),
        "LVM-Med: torchvision ResNet-50 (2D or 3D) + projector, self-supervised by second-order graph matching of two augmented views",
        new Dictionary<string, Func<ArchitectureConfig>> { [ModelRegistry.Tiny] = () => LvmMedConfig.Tiny(), [ModelRegistry.Full] = () => LvmMedConfig.Full() },
        (config, device) => new LvmMedModel((LvmMedConfig)config, device));
}
