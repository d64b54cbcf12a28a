using System.Globalization;
using MathNet.Numerics.LinearAlgebra;

namespace MedVlp.Volumes;

/// <summary>
/// An immutable 4x4 homogeneous transform. On a <see cref="Volume"/> it maps a voxel index (i, j, k)
/// to world coordinates in millimetres in the RAS+ convention of NIfTI and nibabel
/// (x grows to the subject's Right, y to Anterior, z to Superior).
/// </summary>
public sealed class Affine : IEquatable<Affine>
{
    private readonly double[] _m; // row-major 4x4

    private Affine(double[] rowMajor) => _m = rowMajor;

    /// <summary>The identity transform.</summary>
    public static Affine Identity { get; } = FromRowMajor([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]);

    /// <summary>Creates an affine from 16 numbers in row-major order.</summary>
    public static Affine FromRowMajor(ReadOnlySpan<double> values)
    {
        if (values.Length != 16)
        {
            throw new ArgumentException($"An affine needs 16 values, got {values.Length}.", nameof(values));
        }

        var m = values.ToArray();
        foreach (var v in m)
        {
            if (!double.IsFinite(v))
            {
                throw new ArgumentException("An affine must contain only finite numbers.", nameof(values));
            }
        }

        return new Affine(m);
    }

    /// <summary>Creates an affine from a 4x4 (or 3x4, bottom row implied) array.</summary>
    public static Affine FromArray(double[,] matrix)
    {
        ArgumentNullException.ThrowIfNull(matrix);
        var rows = matrix.GetLength(0);
        if ((rows != 4 && rows != 3) || matrix.GetLength(1) != 4)
        {
            throw new ArgumentException("An affine array must be 4x4 or 3x4.", nameof(matrix));
        }

        var m = new double[16];
        for (var r = 0; r < rows; r++)
        {
            for (var c = 0; c < 4; c++)
            {
                m[(r * 4) + c] = matrix[r, c];
            }
        }

        m[15] = 1;
        return FromRowMajor(m);
    }

    /// <summary>A diagonal scaling by the spacing, with the given translation.</summary>
    public static Affine FromSpacing(Spacing spacing, double originX = 0, double originY = 0, double originZ = 0) =>
        FromRowMajor([spacing.X, 0, 0, originX, 0, spacing.Y, 0, originY, 0, 0, spacing.Z, originZ, 0, 0, 0, 1]);

    /// <summary>The element at <paramref name="row"/>, <paramref name="column"/>.</summary>
    public double this[int row, int column]
    {
        get
        {
            if ((uint)row > 3 || (uint)column > 3)
            {
                throw new ArgumentOutOfRangeException(nameof(row), "Row and column must be 0..3.");
            }

            return _m[(row * 4) + column];
        }
    }

    /// <summary>The 16 elements in row-major order (a copy).</summary>
    public double[] ToRowMajor() => (double[])_m.Clone();

    /// <summary>The matrix as a 4x4 array (a copy).</summary>
    public double[,] ToArray()
    {
        var a = new double[4, 4];
        for (var r = 0; r < 4; r++)
        {
            for (var c = 0; c < 4; c++)
            {
                a[r, c] = _m[(r * 4) + c];
            }
        }

        return a;
    }

    /// <summary>Maps a (voxel) point through the transform.</summary>
    public (double X, double Y, double Z) Apply(double i, double j, double k) => (
        (_m[0] * i) + (_m[1] * j) + (_m[2] * k) + _m[3],
        (_m[4] * i) + (_m[5] * j) + (_m[6] * k) + _m[7],
        (_m[8] * i) + (_m[9] * j) + (_m[10] * k) + _m[11]);

    /// <summary>The voxel sizes implied by the transform: the lengths of the first three columns.</summary>
    public Spacing Zooms => new(ColumnNorm(0), ColumnNorm(1), ColumnNorm(2));

    /// <summary>The translation (the world position of voxel 0,0,0).</summary>
    public (double X, double Y, double Z) Origin => (_m[3], _m[7], _m[11]);

    /// <summary>The matrix product <c>a * b</c> (apply <paramref name="b"/> first).</summary>
    public static Affine operator *(Affine a, Affine b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        var m = new double[16];
        for (var r = 0; r < 4; r++)
        {
            for (var c = 0; c < 4; c++)
            {
                double s = 0;
                for (var k = 0; k < 4; k++)
                {
                    s += a._m[(r * 4) + k] * b._m[(k * 4) + c];
                }

                m[(r * 4) + c] = s;
            }
        }

        return new Affine(m);
    }

    /// <summary>Multiplies two affines (same as <c>a * b</c>).</summary>
    public static Affine Multiply(Affine a, Affine b) => a * b;

    /// <summary>The inverse transform (world to voxel for a volume's affine).</summary>
    /// <exception cref="InvalidOperationException">The matrix is singular.</exception>
    public Affine Inverse()
    {
        var mat = ToMatrix();
        if (Math.Abs(mat.Determinant()) < 1e-300)
        {
            throw new InvalidOperationException("The affine is singular and has no inverse.");
        }

        var inv = mat.Inverse();
        var m = new double[16];
        for (var r = 0; r < 4; r++)
        {
            for (var c = 0; c < 4; c++)
            {
                m[(r * 4) + c] = inv[r, c];
            }
        }

        return new Affine(m);
    }

    /// <summary>True when every element differs from <paramref name="other"/>'s by at most <paramref name="tolerance"/>.</summary>
    public bool ApproximatelyEquals(Affine other, double tolerance = 1e-6)
    {
        ArgumentNullException.ThrowIfNull(other);
        for (var n = 0; n < 16; n++)
        {
            if (Math.Abs(_m[n] - other._m[n]) > tolerance)
            {
                return false;
            }
        }

        return true;
    }

    /// <inheritdoc />
    public bool Equals(Affine? other) => other is not null && _m.AsSpan().SequenceEqual(other._m);

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is Affine a && Equals(a);

    /// <inheritdoc />
    public override int GetHashCode()
    {
        var h = new HashCode();
        foreach (var v in _m)
        {
            h.Add(v);
        }

        return h.ToHashCode();
    }

    /// <inheritdoc />
    public override string ToString()
    {
        var rows = new string[4];
        for (var r = 0; r < 4; r++)
        {
            rows[r] = string.Join(", ", _m.Skip(r * 4).Take(4).Select(v => v.ToString("G6", CultureInfo.InvariantCulture)));
        }

        return "[" + string.Join("; ", rows) + "]";
    }

    internal Matrix<double> ToMatrix() => Matrix<double>.Build.DenseOfArray(ToArray());

    private double ColumnNorm(int c) =>
        Math.Sqrt((_m[c] * _m[c]) + (_m[4 + c] * _m[4 + c]) + (_m[8 + c] * _m[8 + c]));
}
