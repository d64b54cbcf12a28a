using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Losses;

/// <summary>
/// The extension point of the loss family: a TorchSharp module from a typed input record to a
/// <see cref="LossOutput"/>. Subclasses implement <see cref="ComputeLoss"/> only; the base runs it
/// inside a dispose scope, so temporaries are freed and only the output's tensors survive.
/// </summary>
/// <typeparam name="TInput">The input record (for example <see cref="ContrastiveInput"/>).</typeparam>
/// <remarks>
/// A loss with learnable parts (layers, codebooks) registers them as usual with
/// <c>RegisterComponents()</c> in its constructor; they then appear in <c>parameters()</c>.
/// Losses compose with <see cref="CompositeLoss{TInput}"/>.
/// </remarks>
public abstract class VlpLoss<TInput> : nn.Module<TInput, LossOutput>
{
    /// <summary>Creates the loss.</summary>
    /// <param name="name">The module name (used in state dicts and logs).</param>
    protected VlpLoss(string name)
        : base(name)
    {
    }

    /// <summary>Computes the loss inside a dispose scope and returns the output moved out of it.</summary>
    /// <param name="input">The loss input.</param>
    /// <returns>The total and its named terms.</returns>
    public sealed override LossOutput forward(TInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        using var scope = NewDisposeScope();
        var output = ComputeLoss(input);
        return output.MoveToOuter(scope);
    }

    /// <summary>
    /// Computes the loss. Runs inside a dispose scope opened by <see cref="forward"/>: create tensors
    /// freely; the ones referenced by the returned output are kept, the rest are freed.
    /// </summary>
    /// <param name="input">The loss input (never null).</param>
    /// <returns>The total and its named terms.</returns>
    protected abstract LossOutput ComputeLoss(TInput input);
}
