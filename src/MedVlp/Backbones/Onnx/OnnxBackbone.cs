using MedVlp.Serialization;
using Microsoft.ML.OnnxRuntime;
using TensorElementType = Microsoft.ML.OnnxRuntime.Tensors.TensorElementType;
using static TorchSharp.torch;

namespace MedVlp.Backbones.Onnx;

/// <summary>
/// A frozen model run by ONNX Runtime whose result is a TorchSharp tensor, so trainable TorchSharp heads can sit on top
/// (M-FLAG's recipe: a frozen language model plus trainable projectors). One <see cref="InferenceSession"/> per model is
/// shared by all threads (ONNX Runtime's <c>Run</c> is thread-safe); inputs are wrapped around the callers' arrays and
/// the output is written by ONNX Runtime straight into a pre-allocated TorchSharp tensor through the <see cref="OrtValue"/>
/// API, so no managed copy of the result is made. The output never requires grad: nothing flows back into the backbone.
/// </summary>
public abstract class OnnxBackbone : IDisposable
{
    private readonly InferenceSession _session;
    private readonly RunOptions _runOptions = new();
    private bool _disposed;

    /// <summary>Opens <paramref name="modelPath"/>.</summary>
    /// <exception cref="ModelFormatException">ONNX Runtime cannot load the file.</exception>
    protected OnnxBackbone(string modelPath, OnnxBackboneOptions? options)
    {
        ArgumentException.ThrowIfNullOrEmpty(modelPath);
        if (!File.Exists(modelPath))
        {
            throw new FileNotFoundException($"ONNX model {modelPath} does not exist.", modelPath);
        }

        options ??= new OnnxBackboneOptions();
        using var sessionOptions = options.CreateSessionOptions();
        try
        {
            _session = new InferenceSession(modelPath, sessionOptions);
        }
        catch (OnnxRuntimeException ex)
        {
            throw new ModelFormatException(modelPath, "model", $"ONNX Runtime cannot load it ({ex.Message}).", ex);
        }

        ModelPath = modelPath;
        InputNames = _session.InputMetadata.Keys.ToArray();
        var outputs = _session.OutputMetadata;
        OutputName = options.OutputName ?? (outputs.ContainsKey("last_hidden_state") ? "last_hidden_state" : outputs.Keys.First());
        if (!outputs.TryGetValue(OutputName, out var output))
        {
            _session.Dispose();
            throw new ModelFormatException(modelPath, "outputs", $"the model has no output \"{OutputName}\"; it has {string.Join(", ", outputs.Keys)}.");
        }

        if (output.ElementDataType != TensorElementType.Float)
        {
            _session.Dispose();
            throw new ModelFormatException(modelPath, OutputName, $"expected a float32 output, found {output.ElementDataType}.");
        }
    }

    /// <summary>The model file.</summary>
    public string ModelPath { get; }

    /// <summary>The model's input names.</summary>
    public IReadOnlyList<string> InputNames { get; }

    /// <summary>The output this backbone returns.</summary>
    public string OutputName { get; }

    /// <summary>The session (shared; do not dispose).</summary>
    protected InferenceSession Session => _session;

    /// <inheritdoc />
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases the session's native memory.</summary>
    protected virtual void Dispose(bool disposing)
    {
        if (!_disposed && disposing)
        {
            _runOptions.Dispose();
            _session.Dispose();
        }

        _disposed = true;
    }

    /// <summary>Runs the session on <paramref name="inputs"/> and writes the output straight into a new CPU float32 tensor of <paramref name="outputShape"/>.</summary>
    protected Tensor Run(IReadOnlyList<string> inputNames, IReadOnlyList<OrtValue> inputs, long[] outputShape)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var result = empty(outputShape, ScalarType.Float32);
        try
        {
            var bytes = result.numel() * sizeof(float);
            using var output = OrtValue.CreateTensorValueWithData(OrtMemoryInfo.DefaultInstance, TensorElementType.Float, outputShape,
                NativeStorage.DataPointer(result), bytes);
            _session.Run(_runOptions, inputNames, inputs, [OutputName], [output]);
        }
        catch (OnnxRuntimeException ex)
        {
            result.Dispose();
            throw new InvalidOperationException($"{ModelPath}: ONNX Runtime failed ({ex.Message}).", ex);
        }
        catch
        {
            result.Dispose();
            throw;
        }

        return result;
    }

    /// <summary>The output's static dimension <paramref name="axis"/>, or -1 if it is symbolic.</summary>
    protected int OutputDimension(int axis)
    {
        var dims = _session.OutputMetadata[OutputName].Dimensions;
        return axis < dims.Length ? dims[axis] : -1;
    }
}
