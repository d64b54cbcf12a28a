using MedVlp.Volumes.Transforms;

namespace MedVlp.Volumes.Tests.Transforms;

/// <summary>Sliding-window patches (MONAI's dense_patch_slices positions) and 2D slices, with true affines.</summary>
public sealed class PatchTests
{
    private static Volume Ramp(VolumeShape shape) =>
        new([.. Enumerable.Range(0, (int)shape.VoxelCount).Select(v => (float)v)], shape, Affine.FromSpacing(new Spacing(0.5, 1, 2), 3, 4, 5));

    [Fact]
    public void StartsFollowMonai()
    {
        // MONAI: roi 4, overlap 0.5 on length 10 -> interval 2, starts 0, 2, 4, 6 (last clamped to 6)
        var starts = VolumePatches.SlidingWindowStarts(new VolumeShape(10, 3, 9), new VolumeShape(4, 4, 4), 0.5);
        Assert.Equal([0, 2, 4, 6], starts.Select(s => s.X).Distinct());
        Assert.Equal([0], starts.Select(s => s.Y).Distinct());
        Assert.Equal([0, 2, 4, 5], starts.Select(s => s.Z).Distinct());
        Assert.Equal(16, starts.Count);
        Assert.Throws<ArgumentOutOfRangeException>(() => VolumePatches.SlidingWindowStarts(new VolumeShape(4, 4, 4), new VolumeShape(2, 2, 2), 1));
    }

    [Fact]
    public void PatchesCoverTheVolumeAndKeepTheirAffine()
    {
        var v = Ramp(new VolumeShape(10, 3, 9));
        var covered = new bool[v.VoxelsPerFrame];
        foreach (var p in VolumePatches.SlidingWindow(v, new VolumeShape(4, 4, 4), 0.5, fillValue: -1))
        {
            Assert.Equal(new VolumeShape(4, 4, 4), p.Volume.Shape);
            for (var k = 0; k < 4; k++)
            {
                for (var j = 0; j < 4; j++)
                {
                    for (var i = 0; i < 4; i++)
                    {
                        var (x, y, z) = (p.Start.X + i, p.Start.Y + j, p.Start.Z + k);
                        var world = p.Volume.Affine.Apply(i, j, k);
                        Assert.Equal(v.Affine.Apply(x, y, z), world);
                        if (y < 3)
                        {
                            covered[v.Index(x, y, z)] = true;
                            Assert.Equal(v[x, y, z], p.Volume[i, j, k]);
                        }
                        else
                        {
                            Assert.Equal(-1f, p.Volume[i, j, k]);
                        }
                    }
                }
            }
        }

        Assert.All(covered, Assert.True);
    }

    [Fact]
    public void SlicesAreOneVoxelThickWithTrueAffines()
    {
        var v = Ramp(new VolumeShape(5, 4, 3));
        var slices = VolumePatches.Slices(v, 1).ToArray();
        Assert.Equal(4, slices.Length);
        Assert.Equal(new VolumeShape(5, 1, 3), slices[2].Shape);
        Assert.Equal(v.Affine.Apply(1, 2, 1), slices[2].Affine.Apply(1, 0, 1));
        Assert.Equal(v[1, 2, 1], slices[2][1, 0, 1]);
        var a = VolumePatches.SliceArray(v, 2, 1);
        Assert.Equal(4, a.GetLength(0));
        Assert.Equal(5, a.GetLength(1));
        Assert.Equal(v[3, 2, 1], a[2, 3]);
        var s0 = VolumePatches.SliceArray(v, 0, 4);
        Assert.Equal(v[4, 1, 2], s0[2, 1]);
    }
}
