using static TorchSharp.torch;

namespace MedVlp.Modeling.Blocks;

/// <summary>
/// Axial rotary position embedding (RoPE) for 1, 2 or 3 spatial axes, as in EVA-02 and the EVA-style 3D ViTs: the head
/// size D is split across the axes (each axis gets <c>2 * floor(D / (2 * axes))</c> channels, the remainder is not
/// rotated); within an axis, channel pair (2i, 2i+1) is rotated by the angle <c>p * theta^(-2i / Da)</c> where p is the
/// token's index along that axis (EVA-02's interleaved pairs). It has no parameters: <see cref="Tables"/> computes the
/// cos / sin tables for a token grid, and the attention blocks apply them to queries and keys, so attention scores
/// depend only on relative positions.
/// </summary>
public sealed class RotaryEmbedding
{
    /// <summary>Creates the embedding.</summary>
    /// <param name="headSize">Channels per head (even).</param>
    /// <param name="axes">Spatial axes (1 = sequence, 2 = image, 3 = volume).</param>
    /// <param name="theta">Base of the frequencies (10000 as in RoFormer and EVA-02).</param>
    public RotaryEmbedding(int headSize, int axes = 3, double theta = 10000)
    {
        if (headSize <= 0 || headSize % 2 != 0 || axes is < 1 or > 3 || headSize / (2 * axes) == 0 || !(theta > 1))
        {
            throw new ArgumentException($"Rotary embedding needs an even head size with at least 2 channels per axis ({axes} axes) and theta > 1, got head size {headSize}, theta {theta}.");
        }

        HeadSize = headSize;
        Axes = axes;
        Theta = theta;
        AxisSize = 2 * (headSize / (2 * axes));
    }

    /// <summary>Channels per head.</summary>
    public int HeadSize { get; }

    /// <summary>Spatial axes.</summary>
    public int Axes { get; }

    /// <summary>Frequency base.</summary>
    public double Theta { get; }

    /// <summary>Rotated channels per axis.</summary>
    public int AxisSize { get; }

    /// <summary>
    /// cos / sin tables for the tokens of a grid (row-major, the last axis fastest, as <c>flatten(2)</c> of a
    /// convolution output), after <paramref name="prefixTokens"/> unrotated tokens (a CLS token).
    /// </summary>
    public RotaryTables Tables(long[] grid, int prefixTokens = 0, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(grid);
        if (grid.Length != Axes || grid.Any(g => g <= 0))
        {
            throw new ArgumentException($"A grid of {Axes} positive sizes is needed, got [{string.Join(", ", grid)}].", nameof(grid));
        }

        using var scope = NewDisposeScope();
        var count = grid.Aggregate(1L, (a, b) => a * b);
        var flat = arange(count, dtype: ScalarType.Int64, device: device);
        var coordinates = new List<Tensor>();
        var stride = count;
        for (var axis = 0; axis < Axes; axis++)
        {
            stride /= grid[axis];
            coordinates.Add(flat.div(stride, rounding_mode: RoundingMode.floor).remainder(grid[axis]));
        }

        return TablesAt(stack(coordinates, 1), prefixTokens);
    }

    /// <summary>
    /// cos / sin tables for tokens at explicit positions (N x axes, integer or fractional coordinates): e.g. the
    /// positions of new tokens when decoding with a cache, or EVA-02's rescaled positions of a larger grid.
    /// </summary>
    public RotaryTables TablesAt(Tensor positions, int prefixTokens = 0)
    {
        ArgumentNullException.ThrowIfNull(positions);
        if (positions.Dimensions != 2 || positions.shape[1] != Axes)
        {
            throw new ArgumentException($"Positions must be (tokens x {Axes}), got [{string.Join(", ", positions.shape)}].", nameof(positions));
        }

        using var scope = NewDisposeScope();
        var inverse = pow(Theta, -arange(0, AxisSize, 2, dtype: ScalarType.Float64, device: positions.device) / AxisSize); // Da/2
        var position = positions.to(ScalarType.Float64);
        var angles = Enumerable.Range(0, Axes).Select(axis => position[.., axis].unsqueeze(1) * inverse.unsqueeze(0)).ToArray(); // N x Da/2 each
        var angle = cat(angles, 1).repeat_interleave(2, 1); // N x (axes * Da), interleaved pairs
        var count = positions.shape[0];
        var rest = HeadSize - (Axes * AxisSize);
        var cos = angle.cos();
        var sin = angle.sin();
        if (rest > 0)
        {
            cos = cat([cos, ones(count, rest, ScalarType.Float64, positions.device)], 1);
            sin = cat([sin, zeros(count, rest, ScalarType.Float64, positions.device)], 1);
        }

        return new RotaryTables(scope.MoveToOuter(cos.to(ScalarType.Float32)), scope.MoveToOuter(sin.to(ScalarType.Float32)), prefixTokens);
    }
}

/// <summary>
/// cos / sin tables (N x D) of a <see cref="RotaryEmbedding"/> and the number of leading tokens left unrotated.
/// Owns its tensors.
/// </summary>
public sealed class RotaryTables : IDisposable
{
    /// <summary>Creates tables from cos and sin (N x D).</summary>
    public RotaryTables(Tensor cos, Tensor sin, int prefixTokens = 0)
    {
        ArgumentNullException.ThrowIfNull(cos);
        ArgumentNullException.ThrowIfNull(sin);
        ArgumentOutOfRangeException.ThrowIfNegative(prefixTokens);
        Cos = cos.DetachFromDisposeScope();
        Sin = sin.DetachFromDisposeScope();
        PrefixTokens = prefixTokens;
    }

    /// <summary>cos of the angles (N x D).</summary>
    public Tensor Cos { get; }

    /// <summary>sin of the angles (N x D).</summary>
    public Tensor Sin { get; }

    /// <summary>Leading tokens (CLS) that are not rotated.</summary>
    public int PrefixTokens { get; }

    /// <summary>Rotates (B x H x (prefix + N) x D) queries or keys: <c>x cos + rotate_half(x) sin</c> on the last N tokens.</summary>
    public Tensor Apply(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.shape[^2] != PrefixTokens + Cos.shape[0] || x.shape[^1] != Cos.shape[1])
        {
            throw new ArgumentException($"Rotary tables cover {PrefixTokens} + {Cos.shape[0]} tokens of size {Cos.shape[1]}, got [{string.Join(", ", x.shape)}].", nameof(x));
        }

        using var scope = NewDisposeScope();
        var tokens = x.shape[^2];
        var rotated = x.narrow(-2, PrefixTokens, tokens - PrefixTokens);
        var cos = Cos.to(x.dtype, x.device);
        var sin = Sin.to(x.dtype, x.device);
        var result = (rotated * cos) + (RotateHalf(rotated) * sin);
        if (PrefixTokens > 0)
        {
            result = cat([x.narrow(-2, 0, PrefixTokens), result], -2);
        }

        return scope.MoveToOuter(result);
    }

    /// <summary>EVA-02's interleaved rotate_half: pairs (x0, x1) become (-x1, x0).</summary>
    public static Tensor RotateHalf(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        using var scope = NewDisposeScope();
        var shape = x.shape;
        var pairs = x.reshape([.. shape[..^1], shape[^1] / 2, 2]);
        var first = pairs.select(-1, 0);
        var second = pairs.select(-1, 1);
        return scope.MoveToOuter(stack([second.neg(), first], -1).reshape(shape));
    }

    /// <summary>Releases the tables.</summary>
    public void Dispose()
    {
        Cos.Dispose();
        Sin.Dispose();
    }
}
