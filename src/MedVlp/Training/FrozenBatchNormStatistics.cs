using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MedVlp.Training;

/// <summary>
/// Keeps the batch-norm layers of a module in <c>eval()</c> mode while the rest trains (the "frozen batch norm" of
/// detection fine-tuning): they normalise with their running statistics, which then never change, while their scale
/// and shift still train. A <see cref="TrainingObjective"/> calls <see cref="Apply"/> at the start of every
/// <see cref="TrainingObjective.Encode"/>, since the <see cref="Trainer"/> switches every module with trainable
/// parameters back to <c>train()</c> (at the start of a run and after each evaluation).
/// </summary>
/// <remarks>
/// Useful when an encoder trains from random initialisation for a few dozen steps on small batches: the training and
/// inference forwards are then the same function, and the representation cannot lean on batch statistics.
/// </remarks>
public sealed class FrozenBatchNormStatistics
{
    private readonly nn.Module[] _norms;

    /// <summary>Collects the batch-norm layers (1D, 2D and 3D) of <paramref name="module"/> and its children.</summary>
    /// <param name="module">The module, for example an image encoder.</param>
    public FrozenBatchNormStatistics(nn.Module module)
    {
        ArgumentNullException.ThrowIfNull(module);
        _norms = [.. module.named_modules().Select(m => m.module).Where(m => m is BatchNorm1d or BatchNorm2d or BatchNorm3d)];
    }

    /// <summary>The number of batch-norm layers held in <c>eval()</c> mode.</summary>
    public int Count => _norms.Length;

    /// <summary>Puts every collected batch-norm layer into <c>eval()</c> mode.</summary>
    public void Apply()
    {
        foreach (var norm in _norms)
        {
            if (norm.training)
            {
                norm.eval();
            }
        }
    }
}
