using System.Numerics.Tensors;

namespace MedVlp.Volumes.Transforms;

/// <summary>Options of <see cref="Resampler.Resample(Volume, VolumeShape, Affine, ResampleOptions?)"/>.</summary>
public sealed class ResampleOptions
{
    /// <summary>Trilinear (default) or nearest-neighbour.</summary>
    public Interpolation Interpolation { get; init; } = Interpolation.Trilinear;

    /// <summary>The value of output voxels whose world position falls outside the input (default 0).</summary>
    public double FillValue { get; init; }

    /// <summary>When true, outside voxels get the minimum of the input frame instead of <see cref="FillValue"/> (TorchIO's default for images).</summary>
    public bool FillWithMinimum { get; init; }
}

/// <summary>
/// World-coordinate resampling of a volume onto any voxel grid: the output value at voxel <c>v</c> is the interpolation of
/// the input at continuous voxel index <c>inverse(A_in) * A_out * v</c>, so the output affine <c>A_out</c> is true.
/// </summary>
/// <remarks>
/// <para>When the index mapping is axis-aligned (a scale and shift per axis, as for resampling to a spacing or a shape), a
/// separable path interpolates along k, then j, then i with SIMD row operations; otherwise a general path evaluates every
/// output voxel. Both run in parallel over output slices and give the same values up to float rounding.</para>
/// <para>A point is inside the input when every continuous index lies in <c>[-0.5, n - 0.5]</c> (ITK's rule, so SimpleITK /
/// TorchIO resampling is reproduced at the borders); between the outermost voxel centres and that limit the edge voxels
/// are extended. Points outside get the fill value.</para>
/// </remarks>
public static class Resampler
{
    private const double Tolerance = 1e-6;

    /// <summary>Resamples every frame of <paramref name="volume"/> onto the grid (<paramref name="shape"/>, <paramref name="affine"/>).</summary>
    /// <param name="volume">The input volume.</param>
    /// <param name="shape">The output shape.</param>
    /// <param name="affine">The output voxel-to-world affine.</param>
    /// <param name="options">Interpolation and fill; defaults to trilinear with fill 0.</param>
    /// <returns>A new volume with the given shape and affine, and the input's frames and metadata.</returns>
    public static Volume Resample(Volume volume, VolumeShape shape, Affine affine, ResampleOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(volume);
        ArgumentNullException.ThrowIfNull(affine);
        shape.Validate();
        ResourceLimits.Default.CheckPreprocessedSize(shape.X, shape.Y, shape.Z, volume.Frames, "resampling", volume.Metadata.SourcePath);
        options ??= new ResampleOptions();
        var map = IndexMapping(volume.Affine, affine);
        var inShape = volume.Shape;
        var perFrameOut = shape.VoxelCount;
        var dst = GC.AllocateUninitializedArray<float>(checked((int)(perFrameOut * volume.Frames)));
        for (var f = 0; f < volume.Frames; f++)
        {
            ReadOnlySpan<float> frame = volume.GetFrame(f);
            var fill = options.FillWithMinimum ? TensorPrimitives.Min(frame) : (float)options.FillValue;
            ResampleFrame(volume.Buffer, f * (int)volume.VoxelsPerFrame, inShape, dst, f * (int)perFrameOut, shape, map, options.Interpolation, fill);
        }

        return new Volume(dst, shape, affine, volume.FrameShape, affine.Zooms, volume.Metadata);
    }

    /// <summary>The 3x4 mapping (row-major) from output voxel indices to input voxel indices: <c>inverse(A_in) * A_out</c>.</summary>
    public static double[] IndexMapping(Affine input, Affine output)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(output);
        var m = (input.Inverse() * output).ToRowMajor();
        return m[..12];
    }

    /// <summary>True when the 3x4 index mapping scales and shifts each axis separately (no rotation, shear or permutation).</summary>
    public static bool IsAxisAligned(ReadOnlySpan<double> map)
    {
        if (map.Length < 12)
        {
            throw new ArgumentException("An index mapping has 12 values (3x4, row-major).", nameof(map));
        }

        const double eps = 1e-9;
        return Math.Abs(map[1]) < eps && Math.Abs(map[2]) < eps && Math.Abs(map[4]) < eps
            && Math.Abs(map[6]) < eps && Math.Abs(map[8]) < eps && Math.Abs(map[9]) < eps;
    }

    /// <summary>
    /// The 1D interpolation along one axis of an axis-aligned mapping: output index v reads input indices
    /// <c>Lower[v]</c> and <c>Upper[v]</c> with weight <c>Weight[v]</c> on the upper one (edges extended), and is inside the
    /// input when <c>Inside[v]</c>. The separable paths (CPU and TorchSharp) share it, so their grids are identical.
    /// </summary>
    /// <param name="inLength">Input voxels along the axis.</param>
    /// <param name="outLength">Output voxels along the axis.</param>
    /// <param name="scale">Input index step per output index.</param>
    /// <param name="offset">Input index of output index 0.</param>
    /// <param name="interpolation">Trilinear (two taps) or nearest (one tap, weight 0).</param>
    public static (int[] Lower, int[] Upper, float[] Weight, bool[] Inside) AxisSampling(int inLength, int outLength, double scale, double offset, Interpolation interpolation)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(inLength);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(outLength);
        var t = new AxisTable(inLength, outLength, scale, offset, interpolation);
        return (t.I0, t.I1, t.W, t.Valid);
    }

    internal static void ResampleFrame(float[] src, int srcOffset, VolumeShape inShape, float[] dst, int dstOffset, VolumeShape outShape,
        double[] map, Interpolation interpolation, float fill, bool forceGeneral = false)
    {
        if (!forceGeneral && IsAxisAligned(map))
        {
            ResampleSeparable(src, srcOffset, inShape, dst, dstOffset, outShape, map, interpolation, fill);
        }
        else
        {
            ResampleGeneral(src, srcOffset, inShape, dst, dstOffset, outShape, map, interpolation, fill);
        }
    }

    /// <summary>Interpolation weights along one axis: output index v reads input indices I0[v], I1[v] with weight W[v] on I1.</summary>
    private sealed class AxisTable
    {
        public AxisTable(int inLength, int outLength, double scale, double offset, Interpolation interpolation)
        {
            I0 = new int[outLength];
            I1 = new int[outLength];
            W = new float[outLength];
            Valid = new bool[outLength];
            for (var v = 0; v < outLength; v++)
            {
                var p = (scale * v) + offset;
                if (p < -0.5 - Tolerance || p > inLength - 0.5 + Tolerance)
                {
                    continue;
                }

                Valid[v] = true;
                if (interpolation == Interpolation.Nearest)
                {
                    var n = Math.Clamp((int)Math.Floor(p + 0.5), 0, inLength - 1);
                    I0[v] = I1[v] = n;
                    continue;
                }

                p = Math.Clamp(p, 0, inLength - 1);
                var i0 = inLength > 1 ? Math.Min((int)p, inLength - 2) : 0;
                var w = p - i0;
                I0[v] = i0;
                I1[v] = inLength > 1 ? i0 + 1 : 0;
                W[v] = (float)w;
                if (W[v] == 1f)
                {
                    I0[v] = I1[v];
                    W[v] = 0;
                }
            }

            AnyInvalid = Array.IndexOf(Valid, false) >= 0;
        }

        public int[] I0 { get; }

        public int[] I1 { get; }

        public float[] W { get; }

        public bool[] Valid { get; }

        public bool AnyInvalid { get; }
    }

    private static void ResampleSeparable(float[] src, int srcOffset, VolumeShape inShape, float[] dst, int dstOffset, VolumeShape outShape,
        double[] map, Interpolation interpolation, float fill)
    {
        var tx = new AxisTable(inShape.X, outShape.X, map[0], map[3], interpolation);
        var ty = new AxisTable(inShape.Y, outShape.Y, map[5], map[7], interpolation);
        var tz = new AxisTable(inShape.Z, outShape.Z, map[10], map[11], interpolation);
        int nx = inShape.X, ny = inShape.Y, ox = outShape.X, oy = outShape.Y;
        var slice = nx * ny;

        // Input rows (j) that the output needs, so a k-interpolated slice is only computed where it is read.
        var rowNeeded = new bool[ny];
        for (var v = 0; v < oy; v++)
        {
            if (ty.Valid[v])
            {
                rowNeeded[ty.I0[v]] = true;
                rowNeeded[ty.I1[v]] = true;
            }
        }

        // Downsampling along j: interpolate each needed row pair directly (every input row is read about once, the
        // intermediates stay in L1). Otherwise build the k-interpolated slice once and reuse its rows.
        var rowWise = oy <= ny;
        Parallel.For(0, outShape.Z, () => (rowWise ? new float[3 * nx] : new float[slice], new float[nx]), (zo, _, buffers) =>
        {
            var (work, rowBuffer) = buffers;
            var outSlice = dst.AsSpan(dstOffset + (zo * ox * oy), ox * oy);
            if (!tz.Valid[zo])
            {
                outSlice.Fill(fill);
                return buffers;
            }

            var z0 = srcOffset + (tz.I0[zo] * slice);
            var z1 = srcOffset + (tz.I1[zo] * slice);
            var wz = tz.W[zo];
            if (rowWise)
            {
                var a = work.AsSpan(0, nx);
                var b = work.AsSpan(nx, nx);
                var r = work.AsSpan(2 * nx, nx);
                for (var yo = 0; yo < oy; yo++)
                {
                    var outRow = outSlice.Slice(yo * ox, ox);
                    if (!ty.Valid[yo])
                    {
                        outRow.Fill(fill);
                        continue;
                    }

                    var y0 = ty.I0[yo] * nx;
                    var y1 = ty.I1[yo] * nx;
                    var wy = ty.W[yo];
                    ReadOnlySpan<float> ra = wz == 0f ? src.AsSpan(z0 + y0, nx) : Lerp(src.AsSpan(z0 + y0, nx), src.AsSpan(z1 + y0, nx), wz, a);
                    ReadOnlySpan<float> row = ra;
                    if (wy != 0f)
                    {
                        ReadOnlySpan<float> rb = wz == 0f ? src.AsSpan(z0 + y1, nx) : Lerp(src.AsSpan(z0 + y1, nx), src.AsSpan(z1 + y1, nx), wz, b);
                        row = Lerp(ra, rb, wy, r);
                    }

                    InterpolateRow(row, tx, outRow, fill);
                }

                return buffers;
            }

            // 1. along k: the interpolated input slice (or the input slice itself when the weight is 0)
            ReadOnlySpan<float> s;
            if (wz == 0f)
            {
                s = src.AsSpan(z0, slice);
            }
            else
            {
                for (var j = 0; j < ny; j++)
                {
                    if (rowNeeded[j])
                    {
                        TensorPrimitives.Lerp<float>(src.AsSpan(z0 + (j * nx), nx), src.AsSpan(z1 + (j * nx), nx), wz, work.AsSpan(j * nx, nx));
                    }
                }

                s = work;
            }

            for (var yo = 0; yo < oy; yo++)
            {
                var outRow = outSlice.Slice(yo * ox, ox);
                if (!ty.Valid[yo])
                {
                    outRow.Fill(fill);
                    continue;
                }

                // 2. along j: the interpolated row
                ReadOnlySpan<float> row;
                var r0 = s.Slice(ty.I0[yo] * nx, nx);
                if (ty.W[yo] == 0f)
                {
                    row = r0;
                }
                else
                {
                    TensorPrimitives.Lerp(r0, s.Slice(ty.I1[yo] * nx, nx), ty.W[yo], rowBuffer);
                    row = rowBuffer;
                }

                // 3. along i: a gather on the (smallest) final grid
                InterpolateRow(row, tx, outRow, fill);
            }

            return buffers;
        }, _ => { });
    }

    private static Span<float> Lerp(ReadOnlySpan<float> a, ReadOnlySpan<float> b, float w, Span<float> destination)
    {
        TensorPrimitives.Lerp(a, b, w, destination);
        return destination;
    }

    private static void InterpolateRow(ReadOnlySpan<float> row, AxisTable tx, Span<float> outRow, float fill)
    {
        var i0 = tx.I0;
        var i1 = tx.I1;
        var w = tx.W;
        if (!tx.AnyInvalid)
        {
            for (var x = 0; x < outRow.Length; x++)
            {
                var a = row[i0[x]];
                outRow[x] = a + (w[x] * (row[i1[x]] - a));
            }

            return;
        }

        var valid = tx.Valid;
        for (var x = 0; x < outRow.Length; x++)
        {
            if (valid[x])
            {
                var a = row[i0[x]];
                outRow[x] = a + (w[x] * (row[i1[x]] - a));
            }
            else
            {
                outRow[x] = fill;
            }
        }
    }

    private static void ResampleGeneral(float[] src, int srcOffset, VolumeShape inShape, float[] dst, int dstOffset, VolumeShape outShape,
        double[] map, Interpolation interpolation, float fill)
    {
        int nx = inShape.X, ny = inShape.Y, nz = inShape.Z, ox = outShape.X, oy = outShape.Y;
        double loX = -0.5 - Tolerance, hiX = nx - 0.5 + Tolerance;
        double loY = -0.5 - Tolerance, hiY = ny - 0.5 + Tolerance;
        double loZ = -0.5 - Tolerance, hiZ = nz - 0.5 + Tolerance;
        var nearest = interpolation == Interpolation.Nearest;
        Parallel.For(0, outShape.Z, zo =>
        {
            var outSlice = dst.AsSpan(dstOffset + (zo * ox * oy), ox * oy);
            for (var yo = 0; yo < oy; yo++)
            {
                var outRow = outSlice.Slice(yo * ox, ox);
                for (var x = 0; x < ox; x++)
                {
                    // evaluated exactly as the TorchSharp path does, so ties in nearest rounding resolve alike
                    var px = (x * map[0]) + (yo * map[1]) + (zo * map[2]) + map[3];
                    var py = (x * map[4]) + (yo * map[5]) + (zo * map[6]) + map[7];
                    var pz = (x * map[8]) + (yo * map[9]) + (zo * map[10]) + map[11];
                    if (px < loX || px > hiX || py < loY || py > hiY || pz < loZ || pz > hiZ)
                    {
                        outRow[x] = fill;
                        continue;
                    }

                    if (nearest)
                    {
                        var ni = Math.Clamp((int)Math.Floor(px + 0.5), 0, nx - 1);
                        var nj = Math.Clamp((int)Math.Floor(py + 0.5), 0, ny - 1);
                        var nk = Math.Clamp((int)Math.Floor(pz + 0.5), 0, nz - 1);
                        outRow[x] = src[srcOffset + ni + (nx * (nj + (ny * nk)))];
                        continue;
                    }

                    outRow[x] = Trilinear(src, srcOffset, nx, ny, nz, px, py, pz);
                }
            }
        });
    }

    private static float Trilinear(float[] src, int offset, int nx, int ny, int nz, double px, double py, double pz)
    {
        Corner(px, nx, out var i0, out var i1, out var fx);
        Corner(py, ny, out var j0, out var j1, out var fy);
        Corner(pz, nz, out var k0, out var k1, out var fz);
        var r00 = offset + (nx * (j0 + (ny * k0)));
        var r10 = offset + (nx * (j1 + (ny * k0)));
        var r01 = offset + (nx * (j0 + (ny * k1)));
        var r11 = offset + (nx * (j1 + (ny * k1)));
        var c00 = src[r00 + i0] + (fx * (src[r00 + i1] - src[r00 + i0]));
        var c10 = src[r10 + i0] + (fx * (src[r10 + i1] - src[r10 + i0]));
        var c01 = src[r01 + i0] + (fx * (src[r01 + i1] - src[r01 + i0]));
        var c11 = src[r11 + i0] + (fx * (src[r11 + i1] - src[r11 + i0]));
        var c0 = c00 + (fy * (c10 - c00));
        var c1 = c01 + (fy * (c11 - c01));
        return (float)(c0 + (fz * (c1 - c0)));
    }

    private static void Corner(double p, int n, out int i0, out int i1, out double f)
    {
        p = Math.Clamp(p, 0, n - 1);
        i0 = n > 1 ? Math.Min((int)p, n - 2) : 0;
        i1 = n > 1 ? i0 + 1 : 0;
        f = p - i0;
    }
}
