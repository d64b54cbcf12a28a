using MedVlp.Volumes;
using MedVlp.Volumes.Transforms;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Preprocessing;

/// <summary>
/// Runs transforms and pipelines on TorchSharp tensors, so preprocessing can happen on a GPU. Resampling uses
/// <c>grid_sample</c> on the same world-coordinate grid as the CPU <see cref="Resampler"/> (edge extension within half a
/// voxel, fill beyond), reorientation, flips and crops are index operations, and the intensity transforms are tensor
/// arithmetic; results equal the CPU path within float tolerance. Transforms without a device implementation (rotations
/// by 90 degrees, random augmentations, ...) run on the CPU and the result is moved back.
/// </summary>
public static class TorchTransforms
{
    private const double Tolerance = 1e-6;

    /// <summary>True when <paramref name="transform"/> runs on the device (others fall back to the CPU).</summary>
    public static bool RunsOnDevice(VolumeTransform transform) => transform is ResamplingTransform or Reorient or Flip or SpatialCrop or CropOrPad
        or MinMaxNormalize or Clamp or ScaleIntensityRange or ZScoreNormalize;

    /// <summary>Applies every step of <paramref name="pipeline"/>; the input is not disposed, intermediates are.</summary>
    /// <param name="pipeline">The pipeline.</param>
    /// <param name="volume">The input (kept).</param>
    /// <param name="random">The generator for random steps (required when there are any).</param>
    /// <param name="cancellationToken">Checked between steps.</param>
    /// <returns>A new volume the caller owns.</returns>
    public static TorchVolume Apply(TransformPipeline pipeline, TorchVolume volume, Random? random = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(pipeline);
        ArgumentNullException.ThrowIfNull(volume);
        var current = volume;
        foreach (var step in pipeline.Transforms)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var next = Apply(step, current, random);
            if (!ReferenceEquals(current, volume) && !ReferenceEquals(next, current))
            {
                current.Dispose();
            }

            current = next;
        }

        return ReferenceEquals(current, volume) ? volume.With(volume.Data.clone(), volume.Affine) : current;
    }

    /// <summary>Applies one transform; returns a new volume (the caller owns it) or <paramref name="volume"/> when nothing changed.</summary>
    public static TorchVolume Apply(VolumeTransform transform, TorchVolume volume, Random? random = null)
    {
        ArgumentNullException.ThrowIfNull(transform);
        ArgumentNullException.ThrowIfNull(volume);
        transform.Validate();
        using var scope = NewDisposeScope();
        var x = volume.Data;
        switch (transform)
        {
            case ResamplingTransform r:
            {
                var (shape, affine) = r.GetTargetGrid(volume.Shape, volume.Affine);
                var options = new ResampleOptions { Interpolation = r.Interpolation, FillValue = r.FillValue, FillWithMinimum = r.FillWithMinimum };
                return volume.With(scope.MoveToOuter(Resample(x, volume.Shape, volume.Affine, shape, affine, options)), affine);
            }

            case Reorient o:
            {
                var start = Orientation.AxisMapping(volume.Affine);
                var ornt = Reorientation.Transform(start, Reorientation.FromCodes(o.Codes));
                return Reorder(volume, ornt, scope);
            }

            case Flip f:
                return Reorder(volume, [(0, f.I ? -1 : 1), (1, f.J ? -1 : 1), (2, f.K ? -1 : 1)], scope);

            case SpatialCrop c:
                return Crop(volume, c.Start, c.Size, c.FillValue, scope);

            case CropOrPad c:
                return Crop(volume, c.StartFor(volume.Shape), c.Size, c.FillValue, scope);

            case MinMaxNormalize m:
            {
                double min = x.min().ToDouble(), max = x.max().ToDouble();
                var y = max > min ? ((x - min) * ((m.OutputMax - m.OutputMin) / (max - min))) + m.OutputMin : full_like(x, m.OutputMin);
                return volume.With(scope.MoveToOuter(y), volume.Affine);
            }

            case Clamp c:
                return volume.With(scope.MoveToOuter(x.clamp(c.Min, c.Max)), volume.Affine);

            case ScaleIntensityRange s:
            {
                var input = s.Clip ? x.clamp(Math.Min(s.InputMin, s.InputMax), Math.Max(s.InputMin, s.InputMax)) : x;
                var scale = (s.OutputMax - s.OutputMin) / (s.InputMax - s.InputMin);
                return volume.With(scope.MoveToOuter(((input - s.InputMin) * scale) + s.OutputMin), volume.Affine);
            }

            case ZScoreNormalize z:
            {
                var d = x.to_type(ScalarType.Float64);
                if (!z.NonzeroOnly)
                {
                    var mean = d.mean().ToDouble();
                    var std = d.std(unbiased: false).ToDouble();
                    std = std > 0 ? std : 1;
                    return volume.With(scope.MoveToOuter(((d - mean) / std).to_type(ScalarType.Float32)), volume.Affine);
                }

                var mask = x.ne(0);
                var count = mask.sum().ToInt64();
                if (count == 0)
                {
                    return volume.With(scope.MoveToOuter(x.clone()), volume.Affine);
                }

                var values = d.masked_select(mask);
                var m = values.mean().ToDouble();
                var sd = values.std(unbiased: false).ToDouble();
                sd = sd > 0 ? sd : 1;
                var y = where(mask, (d - m) / sd, d).to_type(ScalarType.Float32);
                return volume.With(scope.MoveToOuter(y), volume.Affine);
            }

            default:
            {
                var cpu = volume.ToVolume();
                var result = transform.Apply(cpu, random);
                if (ReferenceEquals(result, cpu))
                {
                    return volume;
                }

                var moved = TorchVolume.FromVolume(result, volume.Data.device);
                scope.MoveToOuter(moved.Data);
                return moved;
            }
        }
    }

    /// <summary>
    /// Resamples <paramref name="input"/> (<c>[frames, k, j, i]</c>) from the grid (<paramref name="inShape"/>,
    /// <paramref name="inAffine"/>) onto (<paramref name="outShape"/>, <paramref name="outAffine"/>) on the input's device:
    /// the output value at voxel v is the interpolation of the input at <c>inverse(A_in) * A_out * v</c>.
    /// </summary>
    /// <returns>A new <c>[frames, k', j', i']</c> tensor.</returns>
    public static Tensor Resample(Tensor input, VolumeShape inShape, Affine inAffine, VolumeShape outShape, Affine outAffine, ResampleOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(inAffine);
        ArgumentNullException.ThrowIfNull(outAffine);
        options ??= new ResampleOptions();
        outShape.Validate();
        using var scope = NewDisposeScope();
        var m = Resampler.IndexMapping(inAffine, outAffine);
        var device = input.device;
        var frames = input.shape[0];
        if (Resampler.IsAxisAligned(m))
        {
            return scope.MoveToOuter(ResampleSeparable(input, inShape, outShape, m, options));
        }

        var i = arange(outShape.X, ScalarType.Float64, device).view(1, 1, -1);
        var j = arange(outShape.Y, ScalarType.Float64, device).view(1, -1, 1);
        var k = arange(outShape.Z, ScalarType.Float64, device).view(-1, 1, 1);
        var p = new Tensor[3];
        for (var a = 0; a < 3; a++)
        {
            p[a] = ((i * m[a * 4]) + (j * m[(a * 4) + 1]) + (k * m[(a * 4) + 2]) + m[(a * 4) + 3]).expand(outShape.Z, outShape.Y, outShape.X); // same order as the CPU path
        }

        int[] n = [inShape.X, inShape.Y, inShape.Z];
        var outside = zeros([outShape.Z, outShape.Y, outShape.X], ScalarType.Bool, device);
        for (var a = 0; a < 3; a++)
        {
            outside = outside.logical_or(p[a].lt(-0.5 - Tolerance)).logical_or(p[a].gt(n[a] - 0.5 + Tolerance));
        }

        Tensor result;
        if (options.Interpolation == Interpolation.Nearest)
        {
            var idx = new Tensor[3];
            for (var a = 0; a < 3; a++)
            {
                idx[a] = (p[a] + 0.5).floor().clamp(0, n[a] - 1).to_type(ScalarType.Int64);
            }

            var flat = idx[0] + (idx[1] * n[0]) + (idx[2] * ((long)n[0] * n[1]));
            result = input.reshape(frames, -1).index_select(1, flat.flatten()).reshape(frames, outShape.Z, outShape.Y, outShape.X);
        }
        else
        {
            var g = new Tensor[3];
            for (var a = 0; a < 3; a++)
            {
                // clamp to the outer voxel centres (edge extension), then normalise for align_corners=True
                g[a] = n[a] > 1 ? (p[a].clamp(0, n[a] - 1) * (2.0 / (n[a] - 1))) - 1 : zeros_like(p[a]);
            }

            var grid = stack([g[0], g[1], g[2]], -1).to_type(ScalarType.Float32).unsqueeze(0);
            var sampled = nn.functional.grid_sample(input.unsqueeze(0), grid, GridSampleMode.Bilinear, GridSamplePaddingMode.Border, align_corners: true);
            result = sampled.squeeze(0);
        }

        Tensor fill = options.FillWithMinimum
            ? input.reshape(frames, -1).amin([1]).view(frames, 1, 1, 1)
            : tensor((float)options.FillValue, ScalarType.Float32, device);
        result = where(outside.unsqueeze(0), fill, result).contiguous();
        return scope.MoveToOuter(result);
    }

    /// <summary>Axis-aligned resampling as three 1D passes (k, then j, then i) of gathers and lerps, exactly the CPU grid.</summary>
    private static Tensor ResampleSeparable(Tensor input, VolumeShape inShape, VolumeShape outShape, double[] m, ResampleOptions options)
    {
        var device = input.device;
        var x = input;
        var inside = ones([outShape.Z, outShape.Y, outShape.X], ScalarType.Bool, device);
        int[] inLength = [inShape.X, inShape.Y, inShape.Z];
        int[] outLength = [outShape.X, outShape.Y, outShape.Z];
        foreach (var a in new[] { 2, 1, 0 })
        {
            var dim = 3 - a;
            var (lower, upper, weight, valid) = Resampler.AxisSampling(inLength[a], outLength[a], m[(a * 4) + a], m[(a * 4) + 3], options.Interpolation);
            var lo = tensor(lower.Select(v => (long)v).ToArray(), ScalarType.Int64, device);
            var viewShape = new long[] { 1, 1, 1, 1 };
            viewShape[dim] = outLength[a];
            var a0 = x.index_select(dim, lo);
            if (options.Interpolation == Interpolation.Nearest || weight.All(w => w == 0))
            {
                x = a0;
            }
            else
            {
                var hi = tensor(upper.Select(v => (long)v).ToArray(), ScalarType.Int64, device);
                var w = tensor(weight, ScalarType.Float32, device).view(viewShape);
                x = a0.lerp(x.index_select(dim, hi), w);
            }

            var validShape = new long[] { 1, 1, 1 };
            validShape[2 - a] = outLength[a];
            inside = inside.logical_and(tensor(valid, ScalarType.Bool, device).view(validShape));
        }

        Tensor fill = options.FillWithMinimum
            ? input.reshape(input.shape[0], -1).amin([1]).view(input.shape[0], 1, 1, 1)
            : tensor((float)options.FillValue, ScalarType.Float32, device);
        return where(inside.unsqueeze(0), x, fill).contiguous();
    }

    private static TorchVolume Reorder(TorchVolume volume, (int NewAxis, int Flip)[] transform, DisposeScope scope)
    {
        if (transform.Select((t, a) => t.NewAxis == a && t.Flip == 1).All(b => b))
        {
            return volume;
        }

        var x = volume.Data;
        var flips = Enumerable.Range(0, 3).Where(a => transform[a].Flip < 0).Select(a => (long)(3 - a)).ToArray();
        if (flips.Length > 0)
        {
            x = x.flip(flips);
        }

        // tensor dim (3 - a) holds voxel axis a; the output's axis NewAxis takes input axis a
        var dims = new long[] { 0, 0, 0, 0 };
        for (var a = 0; a < 3; a++)
        {
            dims[3 - transform[a].NewAxis] = 3 - a;
        }

        x = x.permute(dims).contiguous();
        var affine = volume.Affine * Reorientation.InverseTransformAffine(transform, volume.Shape);
        return volume.With(scope.MoveToOuter(x), affine);
    }

    private static TorchVolume Crop(TorchVolume volume, VoxelOffset start, VolumeShape size, double fillValue, DisposeScope scope)
    {
        size.Validate();
        var inShape = volume.Shape;
        if (start == default && size == inShape)
        {
            return volume;
        }

        var x = volume.Data;
        var output = full([volume.Frames, size.Z, size.Y, size.X], fillValue, ScalarType.Float32, x.device);
        var view = output;
        var source = x;
        var empty = false;
        for (var a = 0; a < 3; a++)
        {
            var from = Math.Max(0, -start[a]);
            var to = Math.Min(size[a], inShape[a] - start[a]);
            if (to <= from)
            {
                empty = true;
                break;
            }

            view = view.narrow(3 - a, from, to - from);
            source = source.narrow(3 - a, from + start[a], to - from);
        }

        if (!empty)
        {
            view.copy_(source);
        }

        var affine = volume.Affine * Affine.FromRowMajor([1, 0, 0, start.X, 0, 1, 0, start.Y, 0, 0, 1, start.Z, 0, 0, 0, 1]);
        return volume.With(scope.MoveToOuter(output), affine);
    }
}
