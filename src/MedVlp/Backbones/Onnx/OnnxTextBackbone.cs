using MedVlp.Serialization;
using Microsoft.ML.OnnxRuntime;
using TensorElementType = Microsoft.ML.OnnxRuntime.Tensors.TensorElementType;
using static TorchSharp.torch;

namespace MedVlp.Backbones.Onnx;

/// <summary>
/// A frozen text encoder exported to ONNX with BERT's inputs (<c>input_ids</c>, <c>attention_mask</c> and optionally
/// <c>token_type_ids</c>, all int64 [batch, tokens]) and a float32 [batch, tokens, hidden] output such as
/// <c>last_hidden_state</c> (for example all-MiniLM-L6-v2, or a BERT exported with <c>torch.onnx.export</c>).
/// <see cref="Forward"/> has the shape contract of <c>BertModel.forward(ids, mask)</c>.
/// </summary>
public sealed class OnnxTextBackbone : OnnxBackbone
{
    private readonly bool _tokenTypes;

    /// <summary>Opens a text encoder.</summary>
    /// <exception cref="ModelFormatException">The model lacks <c>input_ids</c> / <c>attention_mask</c>, or has inputs this backbone cannot feed.</exception>
    public OnnxTextBackbone(string modelPath, OnnxBackboneOptions? options = null)
        : base(modelPath, options)
    {
        var known = new HashSet<string>(["input_ids", "attention_mask", "token_type_ids"], StringComparer.Ordinal);
        if (!InputNames.Contains("input_ids") || !InputNames.Contains("attention_mask") || InputNames.Any(n => !known.Contains(n)))
        {
            Dispose();
            throw new ModelFormatException(modelPath, "inputs", $"expected input_ids, attention_mask and optionally token_type_ids; the model has {string.Join(", ", InputNames)}.");
        }

        _tokenTypes = InputNames.Contains("token_type_ids");
        HiddenSize = OutputDimension(2);
        if (HiddenSize <= 0)
        {
            // Symbolic last dimension (as all-MiniLM-L6-v2 exports it): probe once with one token.
            using var probe = Forward(ones(1, 1, dtype: ScalarType.Int64), ones(1, 1, dtype: ScalarType.Int64));
            HiddenSize = (int)probe.shape[2];
        }
    }

    /// <summary>Width of the hidden states.</summary>
    public int HiddenSize { get; }

    /// <summary>Hidden states [batch, tokens, hidden] (float32, CPU, no grad) for token ids and a mask (int64 [batch, tokens]).</summary>
    /// <remarks>Thread-safe: any number of threads may call this on one instance.</remarks>
    public Tensor Forward(Tensor inputIds, Tensor attentionMask)
    {
        ArgumentNullException.ThrowIfNull(inputIds);
        ArgumentNullException.ThrowIfNull(attentionMask);
        if (inputIds.ndim != 2 || !inputIds.shape.SequenceEqual(attentionMask.shape))
        {
            throw new ArgumentException($"Expected ids and mask of the same shape [batch, tokens]; found [{string.Join(", ", inputIds.shape)}] and [{string.Join(", ", attentionMask.shape)}].", nameof(inputIds));
        }

        using var scope = NewDisposeScope();
        var ids = inputIds.to_type(ScalarType.Int64).cpu().contiguous();
        var mask = attentionMask.to_type(ScalarType.Int64).cpu().contiguous();
        var types = zeros_like(ids);
        var shape = ids.shape;
        var bytes = ids.numel() * sizeof(long);
        using var idsValue = Wrap(ids, shape, bytes);
        using var maskValue = Wrap(mask, shape, bytes);
        using var typesValue = Wrap(types, shape, bytes);
        var names = _tokenTypes ? new[] { "input_ids", "attention_mask", "token_type_ids" } : ["input_ids", "attention_mask"];
        var values = _tokenTypes ? new[] { idsValue, maskValue, typesValue } : [idsValue, maskValue];
        var hidden = HiddenSize > 0 ? HiddenSize : OutputDimension(2);
        var result = hidden > 0 ? Run(names, values, [shape[0], shape[1], hidden]) : RunUnknownWidth(names, values);
        return scope.MoveToOuter(result);
    }

    private static OrtValue Wrap(Tensor t, long[] shape, long bytes) =>
        OrtValue.CreateTensorValueWithData(OrtMemoryInfo.DefaultInstance, TensorElementType.Int64, shape, NativeStorage.DataPointer(t), bytes);

    private Tensor RunUnknownWidth(string[] names, OrtValue[] values)
    {
        // Only when the output width is symbolic (the one-token probe in the constructor): ONNX Runtime allocates the output.
        using var runOptions = new RunOptions();
        using var outputs = Session.Run(runOptions, names, values, [OutputName]);
        var output = outputs[0];
        var shape = output.GetTensorTypeAndShape().Shape;
        return tensor(output.GetTensorDataAsSpan<float>().ToArray(), shape);
    }
}
