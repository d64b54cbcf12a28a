using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Losses;

/// <summary>
/// The result of a loss: the scalar <see cref="Total"/> to back-propagate and the named, unweighted
/// <see cref="Terms"/> it was made from (for logging and plots). Owns its tensors: dispose it after the step.
/// </summary>
public sealed class LossOutput : IDisposable
{
    private readonly Dictionary<string, Tensor> terms;
    private bool disposed;

    /// <summary>Creates an output with a total and optional named terms (kept in the order given).</summary>
    /// <param name="total">The scalar loss to back-propagate.</param>
    /// <param name="terms">Named parts of the loss; when null the output has one term, <c>"loss"</c>, equal to the total.</param>
    public LossOutput(Tensor total, IEnumerable<KeyValuePair<string, Tensor>>? terms = null)
    {
        ArgumentNullException.ThrowIfNull(total);
        Total = total;
        this.terms = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        if (terms is null)
        {
            this.terms.Add("loss", total);
            return;
        }

        foreach (var (name, value) in terms)
        {
            ArgumentException.ThrowIfNullOrWhiteSpace(name);
            ArgumentNullException.ThrowIfNull(value);
            if (!this.terms.TryAdd(name, value))
            {
                throw new ArgumentException($"The loss term name '{name}' is used twice.", nameof(terms));
            }
        }
    }

    /// <summary>The scalar loss (0-d tensor) to call <c>backward()</c> on.</summary>
    public Tensor Total { get; }

    /// <summary>The named, unweighted terms (0-d tensors still attached to the graph), in the order they were added.</summary>
    public IReadOnlyDictionary<string, Tensor> Terms => terms;

    /// <summary>The total and every term as plain numbers, for logging (<c>"total"</c> first, then the terms).</summary>
    public IReadOnlyDictionary<string, double> ToScalars()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        var result = new Dictionary<string, double>(StringComparer.Ordinal) { ["total"] = Total.ToDouble() };
        foreach (var (name, value) in terms)
        {
            result[name] = value.ToDouble();
        }

        return result;
    }

    /// <summary>Moves every tensor of this output out of <paramref name="scope"/> into the enclosing scope.</summary>
    /// <param name="scope">The dispose scope the tensors were created in.</param>
    /// <returns>This output.</returns>
    public LossOutput MoveToOuter(DisposeScope scope)
    {
        ArgumentNullException.ThrowIfNull(scope);
        foreach (var tensor in DistinctTensors())
        {
            scope.MoveToOuter(tensor);
        }

        return this;
    }

    /// <summary>Disposes the total and the terms.</summary>
    public void Dispose()
    {
        if (disposed)
        {
            return;
        }

        disposed = true;
        foreach (var tensor in DistinctTensors())
        {
            tensor.Dispose();
        }
    }

    private List<Tensor> DistinctTensors()
    {
        var list = new List<Tensor> { Total };
        foreach (var value in terms.Values)
        {
            if (!list.Exists(t => ReferenceEquals(t, value)))
            {
                list.Add(value);
            }
        }

        return list;
    }
}
