using MathNet.Numerics.LinearAlgebra;

namespace MedVlp.Volumes;

/// <summary>
/// Axis codes such as <c>"RAS"</c> or <c>"LPS"</c>: for each voxel axis i, j, k, the world direction
/// (in RAS+ space) toward which the index grows. Computed as nibabel's <c>aff2axcodes</c> does,
/// so oblique affines get the closest axis-aligned code.
/// </summary>
public static class Orientation
{
    private static readonly char[][] Labels = [['L', 'R'], ['P', 'A'], ['I', 'S']];

    /// <summary>The axis codes of a voxel-to-RAS affine, for example <c>"RAS"</c>.</summary>
    public static string FromAffine(Affine affine)
    {
        var ornt = AxisMapping(affine);
        var codes = new char[3];
        for (var i = 0; i < 3; i++)
        {
            var (axis, flip) = ornt[i];
            codes[i] = axis < 0 ? '?' : Labels[axis][flip < 0 ? 0 : 1];
        }

        return new string(codes);
    }

    /// <summary>
    /// For each voxel axis, the world axis (0 = x/LR, 1 = y/PA, 2 = z/IS) it is closest to and whether it
    /// runs along (+1) or against (-1) it; nibabel's <c>io_orientation</c>. An axis with no direction gets (-1, 0).
    /// </summary>
    public static (int WorldAxis, int Sign)[] AxisMapping(Affine affine)
    {
        ArgumentNullException.ThrowIfNull(affine);
        var rzs = Matrix<double>.Build.Dense(3, 3, (r, c) => affine[r, c]);
        for (var c = 0; c < 3; c++)
        {
            var norm = rzs.Column(c).L2Norm();
            if (norm == 0)
            {
                norm = 1;
            }

            rzs.SetColumn(c, rzs.Column(c) / norm);
        }

        var svd = rzs.Svd(true);
        var s = svd.S;
        var tol = s.Maximum() * 3 * 2.220446049250313e-16; // S.max() * max(shape) * float64 eps, as nibabel
        var keep = Enumerable.Range(0, 3).Where(n => s[n] > tol).ToArray();
        var r = Matrix<double>.Build.Dense(3, 3);
        foreach (var n in keep)
        {
            r += svd.U.Column(n).OuterProduct(svd.VT.Row(n));
        }

        var result = new (int, int)[3];
        for (var inAx = 0; inAx < 3; inAx++)
        {
            var col = r.Column(inAx);
            if (col.All(v => Math.Abs(v) <= 1e-8)) // np.allclose(col, 0)
            {
                result[inAx] = (-1, 0);
                continue;
            }

            var outAx = col.AbsoluteMaximumIndex();
            result[inAx] = (outAx, col[outAx] < 0 ? -1 : 1);
            for (var c = 0; c < 3; c++)
            {
                r[outAx, c] = 0;
            }
        }

        return result;
    }

    /// <summary>Checks that <paramref name="codes"/> is a valid three-letter code with one letter of each pair LR, PA, IS.</summary>
    /// <exception cref="ArgumentException">The code is not valid.</exception>
    public static string Validate(string codes)
    {
        ArgumentNullException.ThrowIfNull(codes);
        var upper = codes.ToUpperInvariant();
        if (upper.Length != 3)
        {
            throw new ArgumentException($"Axis codes need three letters such as \"RAS\", got \"{codes}\".", nameof(codes));
        }

        var seen = new bool[3];
        foreach (var ch in upper)
        {
            var axis = WorldAxisOf(ch);
            if (axis < 0 || seen[axis])
            {
                throw new ArgumentException($"Axis codes need one of L/R, one of P/A and one of I/S, got \"{codes}\".", nameof(codes));
            }

            seen[axis] = true;
        }

        return upper;
    }

    /// <summary>The world axis of a code letter (0 for L/R, 1 for P/A, 2 for I/S), or -1.</summary>
    internal static int WorldAxisOf(char code) => char.ToUpperInvariant(code) switch
    {
        'L' or 'R' => 0,
        'P' or 'A' => 1,
        'I' or 'S' => 2,
        _ => -1,
    };
}
