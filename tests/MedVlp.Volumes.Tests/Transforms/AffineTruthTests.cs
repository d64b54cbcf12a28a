using MedVlp.Testing;
using MedVlp.Volumes.IO;
using MedVlp.Volumes.Transforms;

namespace MedVlp.Volumes.Tests.Transforms;

/// <summary>
/// Every spatial transform keeps the affine true: the world position of each output voxel is where its value came from.
/// Checked independently of the transforms' code: output voxel -> world (output affine) -> input index (inverse input
/// affine) -> the input value there (exact for copies, a plain scalar trilinear for resampling).
/// </summary>
public sealed class AffineTruthTests
{
    private static readonly Lazy<Volume> Anatomical = new(() => VolumeReader.Read(TestData.File("nibabel/anatomical.nii")));
    private static readonly Lazy<Volume> Oblique4D = new(() => VolumeReader.Read(TestData.File("nibabel/example4d.nii.gz")));

    public static TheoryData<string> CopyTransforms() => ["flip", "rotate90", "rotate90_3_02", "crop", "pad", "crop_or_pad", "crop_foreground", "random_flip", "random_rotate90", "random_crop", "reorient"];

    private static VolumeTransform Make(string name) => name switch
    {
        "flip" => new Flip { I = true, K = true },
        "rotate90" => new Rotate90(),
        "rotate90_3_02" => new Rotate90 { Turns = 3, First = 0, Second = 2 },
        "crop" => new SpatialCrop { Start = new VoxelOffset(3, 5, 2), Size = new VolumeShape(20, 11, 7) },
        "pad" => new SpatialCrop { Start = new VoxelOffset(-4, -1, 3), Size = new VolumeShape(50, 45, 30), FillValue = -3 },
        "crop_or_pad" => new CropOrPad { Size = new VolumeShape(30, 50, 30), FillValue = -3 },
        "crop_foreground" => new CropForeground { Threshold = 100, Margin = 2, FillValue = -3 },
        "random_flip" => new RandomFlip(),
        "random_rotate90" => new RandomRotate90 { First = 1, Second = 2 },
        "random_crop" => new RandomCrop { Size = new VolumeShape(16, 50, 9), FillValue = -3 },
        "reorient" => new Reorient("SPL"),
        _ => throw new ArgumentException(name),
    };

    [Theory]
    [MemberData(nameof(CopyTransforms))]
    public void CopyingTransformsKeepEveryVoxelAtItsWorldPosition(string name)
    {
        foreach (var input in new[] { Anatomical.Value, Oblique4D.Value })
        {
            var output = Make(name).Apply(input, new Random(3));
            Assert.Equal(input.Frames, output.Frames);
            var toInput = input.Affine.Inverse() * output.Affine;
            var rng = new Random(1);
            for (var n = 0; n < 500; n++)
            {
                int i = rng.Next(output.Shape.X), j = rng.Next(output.Shape.Y), k = rng.Next(output.Shape.Z), t = rng.Next(output.Frames);
                var (x, y, z) = toInput.Apply(i, j, k);
                int xi = (int)Math.Round(x), yi = (int)Math.Round(y), zi = (int)Math.Round(z);
                Assert.True(Math.Abs(x - xi) < 1e-6 && Math.Abs(y - yi) < 1e-6 && Math.Abs(z - zi) < 1e-6, $"{name}: voxel maps to non-integer input index ({x}, {y}, {z})");
                var actual = output.GetFrame(t)[output.Index(i, j, k)];
                if ((uint)xi < (uint)input.Shape.X && (uint)yi < (uint)input.Shape.Y && (uint)zi < (uint)input.Shape.Z)
                {
                    Assert.Equal(input.GetFrame(t)[input.Index(xi, yi, zi)], actual);
                }
                else
                {
                    Assert.Equal(-3f, actual);
                }
            }
        }
    }

    [Fact]
    public void RandomAffineSamplesWhereItsAffineSays()
    {
        var input = Anatomical.Value;
        var transform = new RandomAffine { MaxRotationDegrees = 12, MaxScale = 0.15, MaxTranslationMm = 4, FillValue = -7 };
        var output = transform.Apply(input, new Random(11));
        Assert.Equal(input.Shape, output.Shape);
        Assert.False(output.Affine.ApproximatelyEquals(input.Affine, 1e-3));
        AssertTrilinearTruth(input, output, -7);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    public void RandomAffineOfASingleSliceStaysInItsPlane(int axis)
    {
        // One slice of the real volume along each axis: tilting it out of plane would sample outside and blank it.
        var full = Anatomical.Value;
        var start = new VoxelOffset(axis == 0 ? full.Shape.X / 2 : 0, axis == 1 ? full.Shape.Y / 2 : 0, axis == 2 ? full.Shape.Z / 2 : 0);
        var size = new VolumeShape(axis == 0 ? 1 : full.Shape.X, axis == 1 ? 1 : full.Shape.Y, axis == 2 ? 1 : full.Shape.Z);
        var slice = new SpatialCrop { Start = start, Size = size }.Apply(full);
        var transform = new RandomAffine { MaxRotationDegrees = 30, MaxScale = 0.2, MaxTranslationMm = 6, FillValue = -7 };
        var moved = 0;
        for (var seed = 0; seed < 8; seed++)
        {
            var output = transform.Apply(slice, new Random(seed));
            var toInput = slice.Affine.Inverse() * output.Affine;
            foreach (var (i, j, k) in new[] { (0, 0, 0), (size.X - 1, size.Y - 1, size.Z - 1), (size.X / 3, size.Y / 2, size.Z / 4) })
            {
                var p = toInput.Apply(i, j, k);
                Assert.Equal(0, axis == 0 ? p.X : axis == 1 ? p.Y : p.Z, 9);
            }

            var data = output.GetFrame(0).ToArray();
            Assert.True(data.Count(v => v == -7f) < data.Length / 2, $"seed {seed}: {data.Count(v => v == -7f)} of {data.Length} voxels came from outside the slice");
            moved += output.Affine.ApproximatelyEquals(slice.Affine, 1e-3) ? 0 : 1;
            AssertTrilinearTruth(slice, output, -7);
        }

        Assert.Equal(8, moved);
    }

    [Fact]
    public void ResamplingTransformsSampleWhereTheirAffineSays()
    {
        foreach (var input in new[] { Anatomical.Value, Oblique4D.Value })
        {
            foreach (var t in new VolumeTransform[]
            {
                new ResampleToSpacing { Spacing = new Spacing(1.7, 2.2, 3.1), FillValue = -7 },
                new ResampleToShape { Shape = new VolumeShape(40, 23, 19), FillValue = -7 },
                new ResampleToShape { Shape = new VolumeShape(40, 23, 19), AlignCorners = true, FillValue = -7 },
                new ResizeLongestSide { Size = 64, FillValue = -7 },
            })
            {
                AssertTrilinearTruth(input, t.Apply(input), -7);
            }
        }
    }

    private static void AssertTrilinearTruth(Volume input, Volume output, float fill)
    {
        var toInput = input.Affine.Inverse() * output.Affine;
        var rng = new Random(5);
        var range = input.GetStatistics().Max - input.GetStatistics().Min;
        for (var n = 0; n < 400; n++)
        {
            int i = rng.Next(output.Shape.X), j = rng.Next(output.Shape.Y), k = rng.Next(output.Shape.Z), t = rng.Next(output.Frames);
            var (x, y, z) = toInput.Apply(i, j, k);
            var actual = output.GetFrame(t)[output.Index(i, j, k)];
            if (x < -0.5 - 1e-6 || y < -0.5 - 1e-6 || z < -0.5 - 1e-6 || x > input.Shape.X - 0.5 + 1e-6 || y > input.Shape.Y - 0.5 + 1e-6 || z > input.Shape.Z - 0.5 + 1e-6)
            {
                Assert.Equal(fill, actual);
                continue;
            }

            var expected = ReferenceTrilinear(input, t, x, y, z);
            Assert.True(Math.Abs(actual - expected) <= 1e-4 * range, $"voxel ({i}, {j}, {k}): {actual}, reference {expected}");
        }
    }

    /// <summary>Textbook trilinear interpolation with edge extension (the reference, written independently).</summary>
    private static double ReferenceTrilinear(Volume v, int frame, double x, double y, double z)
    {
        var data = v.GetFrame(frame).ToArray();
        double At(int a, int b, int c) => data[Math.Clamp(a, 0, v.Shape.X - 1) + (v.Shape.X * (Math.Clamp(b, 0, v.Shape.Y - 1) + (v.Shape.Y * Math.Clamp(c, 0, v.Shape.Z - 1))))];
        int x0 = (int)Math.Floor(x), y0 = (int)Math.Floor(y), z0 = (int)Math.Floor(z);
        double fx = x - x0, fy = y - y0, fz = z - z0, sum = 0;
        for (var dz = 0; dz < 2; dz++)
        {
            for (var dy = 0; dy < 2; dy++)
            {
                for (var dx = 0; dx < 2; dx++)
                {
                    var w = (dx == 1 ? fx : 1 - fx) * (dy == 1 ? fy : 1 - fy) * (dz == 1 ? fz : 1 - fz);
                    sum += w * At(x0 + dx, y0 + dy, z0 + dz);
                }
            }
        }

        return sum;
    }

    [Fact]
    public void Rotate90FollowsNumpy()
    {
        // np.rot90([[1, 2, 3], [4, 5, 6]]) == [[3, 6], [2, 5], [1, 4]] (array index [i, j])
        var volume = new Volume([1, 4, 2, 5, 3, 6], new VolumeShape(2, 3, 1));
        var r = new Rotate90().Apply(volume);
        Assert.Equal(new VolumeShape(3, 2, 1), r.Shape);
        float[,] expected = { { 3, 6 }, { 2, 5 }, { 1, 4 } };
        for (var i = 0; i < 3; i++)
        {
            for (var j = 0; j < 2; j++)
            {
                Assert.Equal(expected[i, j], r[i, j, 0]);
            }
        }

        var back = new Rotate90 { Turns = -1 }.Apply(r);
        Assert.Equal(volume.Data.ToArray(), back.Data.ToArray());
        Assert.True(volume.Affine.ApproximatelyEquals(back.Affine, 1e-12));
    }

    [Fact]
    public void CropOrPadCentresAsTorchioOrMedBlip()
    {
        var volume = Volume.Zeros(new VolumeShape(10, 7, 5));
        var torchio = new CropOrPad { Size = new VolumeShape(7, 10, 5) };
        Assert.Equal(new VoxelOffset(2, -2, 0), torchio.StartFor(volume.Shape)); // crop 3: ceil(1.5) = 2 before; pad 3: 2 before
        var medblip = new CropOrPad { Size = new VolumeShape(7, 10, 5), Centering = CropOrPadCentering.ExtraAfter };
        Assert.Equal(new VoxelOffset(1, -1, 0), medblip.StartFor(volume.Shape));
    }

    [Fact]
    public void ResampleToSpacingFollowsTorchioGrid()
    {
        // TorchIO: 181 voxels of 1 mm -> ceil(90.5) = 91 voxels of 2 mm, first centre at index 0.5
        var volume = Volume.Zeros(new VolumeShape(181, 1, 4), Affine.FromSpacing(new Spacing(1, 1, 0.5), 10, 20, 30));
        var (shape, affine) = new ResampleToSpacing(2).GetTargetGrid(volume);
        Assert.Equal(new VolumeShape(91, 1, 1), shape);
        Assert.Equal((10.5, 20.5, 30.75), affine.Origin);
        Assert.Equal(new Spacing(2, 2, 2), affine.Zooms);
    }
}
