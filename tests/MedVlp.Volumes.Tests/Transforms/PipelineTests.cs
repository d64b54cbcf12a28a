using MedVlp.Volumes.Transforms;

namespace MedVlp.Volumes.Tests.Transforms;

/// <summary>Pipeline composition, JSON round trips, versioning and clear errors.</summary>
public sealed class PipelineTests
{
    private static TransformPipeline Everything() => new(
    [
        new Reorient("LPS"),
        new ResampleToSpacing { Spacing = new Spacing(1.5, 1.5, 2), Interpolation = Interpolation.Nearest, FillWithMinimum = true },
        new ResampleToShape { Shape = new VolumeShape(64, 64, 32), AlignCorners = true, FillValue = -1 },
        new ResizeLongestSide { Size = 96 },
        new CropOrPad { Size = new VolumeShape(96, 96, 96), FillValue = -1, Centering = CropOrPadCentering.ExtraAfter },
        new SpatialCrop { Start = new VoxelOffset(-2, 3, 0), Size = new VolumeShape(90, 90, 90) },
        new CropForeground { Threshold = 0.1, Margin = 2 },
        new Flip { J = true },
        new Rotate90 { Turns = 2, First = 1, Second = 2 },
        new MinMaxNormalize(),
        new Clamp(0.05, 0.95),
        new ScaleIntensityRange { InputMin = 0, InputMax = 1, OutputMin = -1, OutputMax = 1, Clip = true },
        new ZScoreNormalize { NonzeroOnly = true },
        new PercentileClip { Lower = 1, Upper = 99 },
        new GaussianBlur { SigmaI = 0.5, SigmaJ = 0, SigmaK = 1 },
        new RandomFlip { Probability = 0.8, K = false },
        new RandomRotate90 { MaxTurns = 2 },
        new RandomAffine { MaxRotationDegrees = 5, MaxScale = 0.05, MaxTranslationMm = 2 },
        new RandomIntensityShift { MaxOffset = 0.2 },
        new RandomIntensityScale { MaxFactor = 0.2 },
        new RandomGamma { GammaMin = 0.8, GammaMax = 1.2 },
        new RandomGaussianNoise { Std = 0.05, RandomStd = true },
        new RandomGaussianBlur { SigmaMin = 0.1, SigmaMax = 0.9 },
        new RandomCrop { Size = new VolumeShape(48, 48, 48) },
        new ExtractSlice { Axis = SliceAxis.J, Index = 3 },
        new RepeatChannels { Channels = 3 },
    ], "everything");

    [Fact]
    public void EveryRegisteredTypeRoundTripsThroughJson()
    {
        var pipeline = Everything();
        Assert.Equal(TransformRegistry.Names.Count, pipeline.Transforms.Select(t => t.GetType()).Distinct().Count());
        var json = pipeline.ToJson();
        var back = TransformPipeline.FromJson(json);
        Assert.Equal(json, back.ToJson());
        Assert.Equal("everything", back.Name);
        Assert.Equal(pipeline.Fingerprint(), back.Fingerprint());
        Assert.Equal(pipeline.Transforms.Select(t => t.GetType()), back.Transforms.Select(t => t.GetType()));
        Assert.Contains("\"type\": \"resample_to_spacing\"", json, StringComparison.Ordinal);
        Assert.Contains("\"interpolation\": \"nearest\"", json, StringComparison.Ordinal);
        Assert.Contains("\"version\": 1", json, StringComparison.Ordinal);
        Assert.Equal(15, pipeline.DeterministicPrefixLength);
    }

    [Fact]
    public void PresetsAreExact()
    {
        var medblip = TransformPresets.Get("medblip");
        Assert.Equal(["min_max", "resize_longest_side", "crop_or_pad"], medblip.Transforms.Select(t => TransformRegistry.NameOf(t.GetType())));
        var colipri = TransformPresets.Get("COLIPRI");
        Assert.Equal(["reorient", "resample_to_spacing", "clamp", "scale_intensity_range", "crop_or_pad"], colipri.Transforms.Select(t => TransformRegistry.NameOf(t.GetType())));
        Assert.Equal("SAR", ((Reorient)colipri.Transforms[0]).Codes);
        Assert.Equal(Spacing.Isotropic(2), ((ResampleToSpacing)colipri.Transforms[1]).Spacing);
        Assert.Equal(new VolumeShape(192, 192, 192), ((CropOrPad)colipri.Transforms[4]).Size);
        Assert.Throws<ArgumentException>(() => TransformPresets.Get("clip"));
        Assert.Equal(medblip.ToJson(), TransformPipeline.FromJson(medblip.ToJson()).ToJson());
    }

    [Fact]
    public void MissingOptionsTakeDefaults()
    {
        var p = TransformPipeline.FromJson("""{"format": "medvlp.transform_pipeline", "version": 1, "transforms": [{"type": "resample_to_spacing", "spacing": {"x": 2, "y": 2, "z": 3}}, {"type": "min_max"}]}""");
        var r = Assert.IsType<ResampleToSpacing>(p.Transforms[0]);
        Assert.Equal(new Spacing(2, 2, 3), r.Spacing);
        Assert.Equal(Interpolation.Trilinear, r.Interpolation);
        Assert.Null(p.Name);
        Assert.Equal(1.0, Assert.IsType<MinMaxNormalize>(p.Transforms[1]).OutputMax);
    }

    [Theory]
    [InlineData("""{"format": "medvlp.transform_pipeline", "version": 2, "transforms": []}""", "version: 2 is not supported")]
    [InlineData("""{"format": "other", "version": 1, "transforms": []}""", "format: must be")]
    [InlineData("""{"format": "medvlp.transform_pipeline", "version": 1, "transforms": [{"type": "sharpen"}]}""", "transforms[0] (type \"sharpen\"): is invalid")]
    [InlineData("""{"format": "medvlp.transform_pipeline", "version": 1, "transforms": [{"type": "clamp", "minimum": 3}]}""", "transforms[0] (type \"clamp\"): is invalid")]
    [InlineData("""{"format": "medvlp.transform_pipeline", "version": 1, "transforms": [{"type": "clamp", "min": 3, "max": 1}]}""", "Min <= Max")]
    [InlineData("""{"format": "medvlp.transform_pipeline", "version": 1, "transforms": [{"type": "reorient", "codes": "RRS"}]}""", "Axis codes")]
    [InlineData("""{"format": "medvlp.transform_pipeline", "version": 1, "transforms": [{"codes": "RAS"}]}""", "transforms[0]")]
    [InlineData("""{"format": "medvlp.transform_pipeline", "version": 1}""", "transforms: must be an array")]
    [InlineData("""[1, 2]""", "must be a JSON object")]
    [InlineData("""{"format": "medvlp.transform_pipeline", "version": 1, "transforms": [], "extra": 1}""", "extra: is not a field")]
    [InlineData("""{not json""", "not valid JSON")]
    public void BadJsonGivesAClearError(string json, string expected)
    {
        var ex = Assert.Throws<VolumeFormatException>(() => TransformPipeline.FromJson(json));
        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void InvalidOptionsAreRejectedWhenBuilt()
    {
        Assert.Throws<ArgumentException>(() => new TransformPipeline([new ResampleToSpacing(0)]));
        Assert.Throws<ArgumentException>(() => new TransformPipeline([new RandomFlip { Probability = 2 }]));
        Assert.Throws<ArgumentException>(() => new Rotate90 { First = 1, Second = 1 }.Apply(Volume.Zeros(new VolumeShape(2, 2, 2))));
    }

    [Fact]
    public void RandomStepsAreReproducibleBySeed()
    {
        var v = new MinMaxNormalize().Apply(new Volume([.. Enumerable.Range(0, 40 * 30 * 20).Select(i => (float)Math.Sin(i * 0.01))], new VolumeShape(40, 30, 20)));
        var p = new TransformPipeline(Everything().Transforms.Skip(15).Where(t => t.IsRandom));
        Assert.True(p.IsRandom);
        Assert.Equal(0, p.DeterministicPrefixLength);
        var a = p.Apply(v, 42);
        var b = p.Apply(v, 42);
        var c = p.Apply(v, 43);
        Assert.Equal(a.Data.ToArray(), b.Data.ToArray());
        Assert.True(a.Affine.Equals(b.Affine));
        Assert.NotEqual(a.Data.ToArray(), c.Data.ToArray());
        Assert.Throws<InvalidOperationException>(() => p.Apply(v));
    }

    [Fact]
    public void NoiseIsGaussianWithTheRequestedMoments()
    {
        var v = Volume.Zeros(new VolumeShape(64, 64, 64));
        var r = new RandomGaussianNoise { Mean = 0.5, Std = 2 }.Apply(v, new Random(1)).Data.ToArray();
        var mean = r.Average(x => (double)x);
        var std = Math.Sqrt(r.Average(x => (x - mean) * (x - mean)));
        Assert.Equal(0.5, mean, 1);
        Assert.Equal(2, std, 1);
    }
}
