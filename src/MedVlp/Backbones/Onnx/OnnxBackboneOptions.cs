using Microsoft.ML.OnnxRuntime;

namespace MedVlp.Backbones.Onnx;

/// <summary>Options of an ONNX Runtime backbone's session.</summary>
public sealed class OnnxBackboneOptions
{
    /// <summary>Threads one inference uses (ONNX Runtime's intra-op threads); 0 lets ONNX Runtime choose. Default 0.</summary>
    public int IntraOpThreads { get; init; }

    /// <summary>Threads for running independent graph nodes in parallel; 0 lets ONNX Runtime choose. Default 0.</summary>
    public int InterOpThreads { get; init; }

    /// <summary>Graph optimisations applied when the session is created. Default: all.</summary>
    public GraphOptimizationLevel OptimizationLevel { get; init; } = GraphOptimizationLevel.ORT_ENABLE_ALL;

    /// <summary>Name of the output to return; <see langword="null"/> takes <c>last_hidden_state</c> if present, else the first output.</summary>
    public string? OutputName { get; init; }

    internal SessionOptions CreateSessionOptions()
    {
        ArgumentOutOfRangeException.ThrowIfNegative(IntraOpThreads);
        ArgumentOutOfRangeException.ThrowIfNegative(InterOpThreads);
        var options = new SessionOptions
        {
            IntraOpNumThreads = IntraOpThreads,
            InterOpNumThreads = InterOpThreads,
            GraphOptimizationLevel = OptimizationLevel,
            ExecutionMode = InterOpThreads > 1 ? ExecutionMode.ORT_PARALLEL : ExecutionMode.ORT_SEQUENTIAL,
        };
        return options;
    }
}
