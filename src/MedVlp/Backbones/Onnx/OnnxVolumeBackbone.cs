using MedVlp.Serialization;
using Microsoft.ML.OnnxRuntime;
using TensorElementType = Microsoft.ML.OnnxRuntime.Tensors.TensorElementType;
using static TorchSharp.torch;

namespace MedVlp.Backbones.Onnx;

/// <summary>
/// A frozen image or volume encoder exported to ONNX: one float32 input (for example [batch, channels, depth, height,
/// width]) and one float32 output whose shape is static apart from the batch axis (for example [batch, features] or
/// [batch, tokens, features]).
/// </summary>
public sealed class OnnxVolumeBackbone : OnnxBackbone
{
    private readonly string _input;
    private readonly int[] _outputDims;

    /// <summary>Opens a volume or image encoder.</summary>
    /// <exception cref="ModelFormatException">The model has more than one input, or an output with symbolic axes after the batch.</exception>
    public OnnxVolumeBackbone(string modelPath, OnnxBackboneOptions? options = null)
        : base(modelPath, options)
    {
        if (InputNames.Count != 1 || Session.InputMetadata[InputNames[0]].ElementDataType != TensorElementType.Float)
        {
            Dispose();
            throw new ModelFormatException(modelPath, "inputs", $"expected one float32 input; the model has {string.Join(", ", InputNames)}.");
        }

        _input = InputNames[0];
        _outputDims = Session.OutputMetadata[OutputName].Dimensions;
        if (_outputDims.Skip(1).Any(d => d <= 0))
        {
            Dispose();
            throw new ModelFormatException(modelPath, OutputName, $"expected a static output shape after the batch axis, found [{string.Join(", ", _outputDims)}].");
        }

        InputDimensions = Session.InputMetadata[_input].Dimensions;
    }

    /// <summary>The input's dimensions as the model declares them (-1 for symbolic axes).</summary>
    public IReadOnlyList<int> InputDimensions { get; }

    /// <summary>The output for a float32 batch (CPU, no grad).</summary>
    /// <remarks>Thread-safe: any number of threads may call this on one instance.</remarks>
    public Tensor Forward(Tensor volumes)
    {
        ArgumentNullException.ThrowIfNull(volumes);
        if (volumes.ndim != InputDimensions.Count)
        {
            throw new ArgumentException($"Expected a {InputDimensions.Count}-D input, found [{string.Join(", ", volumes.shape)}].", nameof(volumes));
        }

        for (var d = 0; d < InputDimensions.Count; d++)
        {
            if (InputDimensions[d] > 0 && InputDimensions[d] != volumes.shape[d])
            {
                throw new ArgumentException($"Input axis {d} must be {InputDimensions[d]}, found {volumes.shape[d]}.", nameof(volumes));
            }
        }

        using var scope = NewDisposeScope();
        var input = volumes.detach().to_type(ScalarType.Float32).cpu().contiguous();
        using var value = OrtValue.CreateTensorValueWithData(OrtMemoryInfo.DefaultInstance, TensorElementType.Float, input.shape,
            NativeStorage.DataPointer(input), input.numel() * sizeof(float));
        var shape = _outputDims.Select((d, i) => i == 0 ? input.shape[0] : d).Select(d => (long)d).ToArray();
        return scope.MoveToOuter(Run([_input], [value], shape));
    }
}
