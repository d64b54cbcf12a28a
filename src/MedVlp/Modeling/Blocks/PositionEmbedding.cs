using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MedVlp.Modeling.Blocks;

/// <summary>
/// Learned absolute position embeddings (1 x (prefix + grid) x width, a ViT's <c>pos_embed</c>) resampled to another
/// grid, as timm's <c>resample_abs_pos_embed</c> and LAVIS' <c>interpolate_pos_embed</c> do: the prefix (CLS) rows are
/// kept, the grid rows are interpolated (bicubic in 2D, trilinear in 3D, <c>align_corners = false</c>).
/// </summary>
public static class PositionEmbedding
{
    /// <summary>Resamples <paramref name="positions"/> from grid <paramref name="from"/> to grid <paramref name="to"/> (2 or 3 axes).</summary>
    public static Tensor Interpolate(Tensor positions, long[] from, long[] to, int prefixTokens = 1)
    {
        ArgumentNullException.ThrowIfNull(positions);
        ArgumentNullException.ThrowIfNull(from);
        ArgumentNullException.ThrowIfNull(to);
        var count = from.Aggregate(1L, (a, b) => a * b);
        if (from.Length != to.Length || from.Length is < 2 or > 3 || positions.Dimensions != 3 || positions.shape[0] != 1 ||
            positions.shape[1] != prefixTokens + count || to.Any(t => t <= 0))
        {
            throw new ArgumentException($"Expected a (1 x ({prefixTokens} + {count}) x width) position embedding and two grids of 2 or 3 positive sizes, got [{string.Join(", ", positions.shape)}], [{string.Join(", ", from)}] -> [{string.Join(", ", to)}].");
        }

        using var scope = NewDisposeScope();
        var width = positions.shape[2];
        var prefix = positions.narrow(1, 0, prefixTokens);
        var grid = positions.narrow(1, prefixTokens, count).reshape(new long[] { 1 }.Concat(from).Append(width).ToArray()).movedim([-1L], [1L]);
        var mode = from.Length == 2 ? InterpolationMode.Bicubic : InterpolationMode.Trilinear;
        var resized = F.interpolate(grid, to, mode: mode, align_corners: false).movedim([1L], [-1L]).reshape(1, -1, width);
        return scope.MoveToOuter(cat([prefix, resized], 1));
    }
}
