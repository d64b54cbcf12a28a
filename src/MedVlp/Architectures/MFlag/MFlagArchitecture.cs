using MedVlp.Modeling;

namespace MedVlp.Architectures.MFlag;

/// <summary>The registry entry of M-FLAG (<c>mflag</c>).</summary>
internal static class MFlagArchitecture
{
    /// <summary>Name, sizes and builder.</summary>
    internal static ModelArchitecture Descriptor { get; } = new(
        MFlagConfig.ArchitectureName,
        typeof(MFlagConfig),
        "M-FLAG: trainable ResNet-50 + frozen BERT, 2048 -> 1024 projectors, orthogonality + alignment loss",
        new Dictionary<string, Func<ArchitectureConfig>> { [ModelRegistry.Tiny] = () => MFlagConfig.Tiny(), [ModelRegistry.Full] = () => MFlagConfig.Full() },
        (config, device) => new MFlagModel((MFlagConfig)config, device));
}
