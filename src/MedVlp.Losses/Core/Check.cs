using static TorchSharp.torch;

namespace MedVlp.Losses;

/// <summary>Argument checks with messages that name the input and the expected shape.</summary>
internal static class Check
{
    public static void Matrix(Tensor t, string name)
    {
        ArgumentNullException.ThrowIfNull(t, name);
        if (t.dim() != 2)
        {
            throw new ArgumentException($"{name} must be a matrix (B x D) but has shape [{string.Join(", ", t.shape)}].", name);
        }
    }

    public static void Rank(Tensor t, int rank, string name, string layout)
    {
        ArgumentNullException.ThrowIfNull(t, name);
        if (t.dim() != rank)
        {
            throw new ArgumentException($"{name} must be {layout} but has shape [{string.Join(", ", t.shape)}].", name);
        }
    }

    public static void SameShape(Tensor a, string aName, Tensor b, string bName)
    {
        if (!a.shape.SequenceEqual(b.shape))
        {
            throw new ArgumentException($"{aName} [{string.Join(", ", a.shape)}] and {bName} [{string.Join(", ", b.shape)}] must have the same shape.", bName);
        }
    }

    public static void Scalar(Tensor t, string name)
    {
        ArgumentNullException.ThrowIfNull(t, name);
        if (t.numel() != 1)
        {
            throw new ArgumentException($"{name} must be a scalar but has shape [{string.Join(", ", t.shape)}].", name);
        }
    }

    public static void Smoothing(double value, string name)
    {
        if (!(value >= 0 && value < 1))
        {
            throw new ArgumentOutOfRangeException(name, value, "Label smoothing must be in [0, 1).");
        }
    }
}
