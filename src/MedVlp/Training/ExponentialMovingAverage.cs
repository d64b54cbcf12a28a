using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MedVlp.Training;

/// <summary>An exponential moving average of parameters: <c>shadow = decay * shadow + (1 - decay) * weight</c> after every step.</summary>
public sealed class ExponentialMovingAverage : IDisposable
{
    private readonly Parameter[] _parameters;
    private readonly Tensor[] _shadow;

    /// <summary>Starts the average at the current values of <paramref name="parameters"/>.</summary>
    public ExponentialMovingAverage(IEnumerable<Parameter> parameters, double decay)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        if (decay is < 0 or >= 1)
        {
            throw new ArgumentOutOfRangeException(nameof(decay), decay, "EMA decay must be in [0, 1).");
        }

        Decay = decay;
        _parameters = [.. parameters];
        using var noGrad = no_grad();
        _shadow = [.. _parameters.Select(p => p.detach().clone())];
    }

    /// <summary>The decay.</summary>
    public double Decay { get; }

    /// <summary>The averaged values, in parameter order.</summary>
    public IReadOnlyList<Tensor> Shadow => _shadow;

    /// <summary>Folds the current parameter values into the average.</summary>
    public void Update()
    {
        using var noGrad = no_grad();
        for (var i = 0; i < _parameters.Length; i++)
        {
            _shadow[i].mul_(Decay).add_(_parameters[i].detach(), alpha: 1 - Decay);
        }
    }

    /// <summary>Copies the averaged values into the parameters (for evaluation or export of the averaged model).</summary>
    public void CopyToParameters()
    {
        using var noGrad = no_grad();
        for (var i = 0; i < _parameters.Length; i++)
        {
            _parameters[i].copy_(_shadow[i]);
        }
    }

    internal void Save(BinaryWriter writer)
    {
        writer.Write(_shadow.Length);
        foreach (var t in _shadow)
        {
            t.Save(writer);
        }
    }

    internal void Load(BinaryReader reader)
    {
        var count = reader.ReadInt32();
        if (count != _shadow.Length)
        {
            throw new InvalidDataException($"The checkpoint's EMA holds {count} tensors; this model has {_shadow.Length} trainable parameters.");
        }

        using var noGrad = no_grad();
        foreach (var t in _shadow)
        {
            t.Load(reader);
        }
    }

    /// <summary>Releases the averaged tensors.</summary>
    public void Dispose()
    {
        foreach (var t in _shadow)
        {
            t.Dispose();
        }
    }
}
