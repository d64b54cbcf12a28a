using static TorchSharp.torch;

namespace MedVlp.Serialization;

/// <summary>Options of <see cref="Safetensors.Load(string, SafetensorsLoadOptions)"/>.</summary>
public sealed class SafetensorsLoadOptions
{
    /// <summary>Where the tensors end up (CPU when <see langword="null"/>).</summary>
    public Device? Device { get; init; }

    /// <summary>Convert floating-point tensors to this type (for example F16 to F32); <see langword="null"/> keeps the stored dtype.</summary>
    public ScalarType? DType { get; init; }

    /// <summary>Load only the tensors whose name this returns <see langword="true"/> for; <see langword="null"/> loads all.</summary>
    public Func<string, bool>? Filter { get; init; }
}
