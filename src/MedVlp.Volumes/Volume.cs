using System.Numerics.Tensors;

namespace MedVlp.Volumes;

/// <summary>
/// A 3D medical volume of <see cref="float"/> voxels, possibly with several frames (time points, echoes,
/// channels), and the <see cref="Affine"/> that maps a voxel index to world RAS+ millimetres.
/// </summary>
/// <remarks>
/// <para>Voxels are stored contiguously with i varying fastest, then j, then k, then the frame index,
/// as in NIfTI files (Fortran order of the <c>(i, j, k, t)</c> array). Read as a C-order tensor the
/// buffer therefore has shape <c>[frames, k, j, i]</c>; <c>MedVlp</c> builds TorchSharp tensors over it
/// without copying.</para>
/// <para>A volume owns a managed buffer only; it needs no disposal. Spatial transforms return new volumes
/// whose affine stays true to the voxels.</para>
/// </remarks>
public sealed class Volume
{
    private readonly float[] _data;
    private readonly int[] _frameShape;

    /// <summary>Creates a volume over <paramref name="data"/> (not copied).</summary>
    /// <param name="data">Voxel values, i fastest, then j, k and frames; length = voxels per frame x frames.</param>
    /// <param name="shape">The spatial shape.</param>
    /// <param name="affine">Voxel index to RAS+ millimetres; <see langword="null"/> for identity (1 mm, RAS).</param>
    /// <param name="frameShape">Extents of the dimensions beyond k (for example <c>[t]</c>); empty or <see langword="null"/> for one frame.</param>
    /// <param name="spacing">Voxel size; defaults to the column lengths of the affine.</param>
    /// <param name="metadata">Where the volume came from.</param>
    public Volume(float[] data, VolumeShape shape, Affine? affine = null, IReadOnlyList<int>? frameShape = null,
        Spacing? spacing = null, VolumeMetadata? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        shape.Validate();
        _frameShape = frameShape?.ToArray() ?? [];
        long frames = 1;
        foreach (var f in _frameShape)
        {
            if (f <= 0)
            {
                throw new ArgumentException($"Frame extents must be positive, got [{string.Join(", ", _frameShape)}].", nameof(frameShape));
            }

            frames *= f;
        }

        var expected = shape.VoxelCount * frames;
        if (expected != data.LongLength)
        {
            throw new ArgumentException($"A {shape} volume with {frames} frame(s) needs {expected} voxels, got {data.LongLength}.", nameof(data));
        }

        _data = data;
        Shape = shape;
        Frames = (int)frames;
        Affine = affine ?? Affine.Identity;
        Spacing = spacing ?? Affine.Zooms;
        Metadata = metadata ?? VolumeMetadata.None;
    }

    /// <summary>Creates a zero-filled single-frame volume.</summary>
    public static Volume Zeros(VolumeShape shape, Affine? affine = null)
    {
        shape.Validate();
        return new Volume(new float[shape.VoxelCount], shape, affine);
    }

    /// <summary>The spatial shape (i, j, k).</summary>
    public VolumeShape Shape { get; }

    /// <summary>The number of 3D frames (1 for a plain 3D volume).</summary>
    public int Frames { get; }

    /// <summary>The extents of the dimensions beyond k, as on disk (empty for a 3D volume).</summary>
    public IReadOnlyList<int> FrameShape => _frameShape;

    /// <summary>Voxel index (i, j, k) to world RAS+ millimetres.</summary>
    public Affine Affine { get; }

    /// <summary>The voxel size in millimetres along i, j, k.</summary>
    public Spacing Spacing { get; }

    /// <summary>Axis codes of the affine, such as <c>"RAS"</c> or <c>"LPS"</c> (nibabel's <c>aff2axcodes</c>).</summary>
    public string Orientation => Volumes.Orientation.FromAffine(Affine);

    /// <summary>Where the volume came from.</summary>
    public VolumeMetadata Metadata { get; }

    /// <summary>The number of voxels in one frame.</summary>
    public long VoxelsPerFrame => Shape.VoxelCount;

    /// <summary>All voxels of all frames (i fastest). Writable: the volume shares this memory.</summary>
    public Memory<float> Data => _data;

    /// <summary>The voxels of one frame.</summary>
    public Span<float> GetFrame(int frame = 0)
    {
        if ((uint)frame >= (uint)Frames)
        {
            throw new ArgumentOutOfRangeException(nameof(frame), frame, $"The volume has {Frames} frame(s).");
        }

        return _data.AsSpan(checked((int)(frame * VoxelsPerFrame)), (int)VoxelsPerFrame);
    }

    /// <summary>The voxel at (i, j, k) of frame 0.</summary>
    public float this[int i, int j, int k]
    {
        get => _data[Index(i, j, k)];
        set => _data[Index(i, j, k)] = value;
    }

    /// <summary>The linear index of (i, j, k) within a frame.</summary>
    public int Index(int i, int j, int k)
    {
        if ((uint)i >= (uint)Shape.X || (uint)j >= (uint)Shape.Y || (uint)k >= (uint)Shape.Z)
        {
            throw new ArgumentOutOfRangeException(nameof(i), $"Voxel ({i}, {j}, {k}) is outside the {Shape} volume.");
        }

        return i + (Shape.X * (j + (Shape.Y * k)));
    }

    /// <summary>A new volume with the same geometry and metadata over other voxel data.</summary>
    public Volume WithData(float[] data, IReadOnlyList<int>? frameShape = null) =>
        new(data, Shape, Affine, frameShape ?? _frameShape, Spacing, Metadata);

    /// <summary>A deep copy.</summary>
    public Volume Clone() => WithData((float[])_data.Clone());

    /// <summary>Minimum, maximum and mean of one frame's voxels, NaNs counted and left out.</summary>
    public VoxelStatistics GetStatistics(int frame = 0) => VoxelStatistics.Compute(GetFrame(frame));

    /// <summary>Counts the NaN and infinite voxels of all frames (SIMD; the finite case costs one pass).</summary>
    public NonFiniteCount CountNonFinite()
    {
        ReadOnlySpan<float> all = _data;
        var vectors = System.Runtime.InteropServices.MemoryMarshal.Cast<float, System.Numerics.Vector<float>>(all);
        long nan = 0, infinite = 0;
        void CountScalar(ReadOnlySpan<float> part)
        {
            foreach (var x in part)
            {
                if (float.IsNaN(x))
                {
                    nan++;
                }
                else if (float.IsInfinity(x))
                {
                    infinite++;
                }
            }
        }

        var width = System.Numerics.Vector<float>.Count;
        for (var n = 0; n < vectors.Length; n++)
        {
            var v = vectors[n];
            if (!System.Numerics.Vector.EqualsAll(v - v, System.Numerics.Vector<float>.Zero))
            {
                CountScalar(all.Slice(n * width, width)); // x - x is NaN exactly for NaN and +-Inf
            }
        }

        CountScalar(all[(vectors.Length * width)..]);
        return new NonFiniteCount(nan, infinite, _data.LongLength);
    }

    /// <summary>The underlying array, for zero-copy interop inside MedVlp.</summary>
    internal float[] Buffer => _data;

    /// <inheritdoc />
    public override string ToString() =>
        $"Volume {Shape}{(Frames > 1 ? $"x{Frames}" : "")} {Orientation} {Spacing} ({Metadata.Format})";
}

/// <summary>How many voxels of a volume are not finite numbers (see <see cref="Volume.CountNonFinite"/>).</summary>
/// <param name="NaN">NaN voxels.</param>
/// <param name="Infinite">Positive or negative infinite voxels.</param>
/// <param name="Total">All voxels.</param>
public readonly record struct NonFiniteCount(long NaN, long Infinite, long Total)
{
    /// <summary>True when every voxel is finite.</summary>
    public bool AllFinite => NaN == 0 && Infinite == 0;

    /// <summary>A sentence for warnings and errors, such as "all 512 voxels are NaN", or null when all are finite.</summary>
    public string? Describe()
    {
        if (AllFinite)
        {
            return null;
        }

        var bad = NaN + Infinite;
        var what = NaN > 0 && Infinite > 0 ? "NaN or infinite" : NaN > 0 ? "NaN" : "infinite";
        return bad == Total ? $"all {Total} voxels are {what}" : $"{bad} of {Total} voxels are {what}";
    }
}

/// <summary>Summary statistics of voxel values; NaN voxels are counted and left out of the others.</summary>
/// <param name="Min">Smallest non-NaN value (NaN if there is none).</param>
/// <param name="Max">Largest non-NaN value (NaN if there is none).</param>
/// <param name="Mean">Arithmetic mean of the non-NaN values, accumulated in double precision.</param>
/// <param name="Count">Number of non-NaN values.</param>
/// <param name="NaNCount">Number of NaN values.</param>
public readonly record struct VoxelStatistics(double Min, double Max, double Mean, long Count, long NaNCount)
{
    /// <summary>Computes the statistics with SIMD, summing small blocks in double precision.</summary>
    public static VoxelStatistics Compute(ReadOnlySpan<float> values)
    {
        const int block = 256; // small enough that float partial sums of int16 data stay exact
        double sum = 0;
        float min = float.PositiveInfinity, max = float.NegativeInfinity;
        long nans = 0;
        for (var start = 0; start < values.Length; start += block)
        {
            var chunk = values.Slice(start, Math.Min(block, values.Length - start));
            var s = TensorPrimitives.Sum(chunk);
            if (float.IsNaN(s))
            {
                // Rare: a chunk with NaN (or infinities of both signs); take it value by value.
                foreach (var v in chunk)
                {
                    if (float.IsNaN(v))
                    {
                        nans++;
                        continue;
                    }

                    sum += v;
                    min = Math.Min(min, v);
                    max = Math.Max(max, v);
                }

                continue;
            }

            sum += s;
            min = Math.Min(min, TensorPrimitives.Min(chunk));
            max = Math.Max(max, TensorPrimitives.Max(chunk));
        }

        var count = values.Length - nans;
        return count == 0
            ? new VoxelStatistics(double.NaN, double.NaN, double.NaN, 0, nans)
            : new VoxelStatistics(min, max, sum / count, count, nans);
    }
}
