using MedVlp.Volumes;

namespace MedVlp.Synthetic;

/// <summary>
/// A seedable synthetic chest CT dataset for COLIPRI-style training and zero-shot evaluation: phantoms in Hounsfield
/// units (body wall, fat, ribs, sternum, vertebrae, trachea and bronchi, lungs, heart, aorta, liver dome) with findings a
/// reader can see (<see cref="ChestFinding"/>: lung nodules, pleural effusion, cardiomegaly, emphysema, consolidation),
/// free-text reports that describe every present finding and negate some absent ones, stored LPS or RAS with an
/// anisotropic spacing, so the <c>colipri</c> preset (SAR, 2 mm, HU clamp, crop/pad) does real work.
/// </summary>
/// <remarks>Case <c>i</c> of a dataset with seed <c>s</c> depends only on (<c>s</c>, <c>i</c>) and the options.</remarks>
public static class SyntheticChestDataset
{
    /// <summary>Generates <paramref name="count"/> cases (in parallel; each case is itself rendered in parallel).</summary>
    /// <param name="count">Number of cases.</param>
    /// <param name="seed">Seed of the whole dataset.</param>
    /// <param name="options">Grid, prevalence and nuisance options; <see langword="null"/> for the defaults.</param>
    /// <param name="firstIndex">Index of the first case.</param>
    /// <param name="progress">Receives the number of finished cases.</param>
    /// <param name="cancellationToken">Stops the generation.</param>
    public static IReadOnlyList<SyntheticChestCase> Generate(int count, int seed, SyntheticChestOptions? options = null, int firstIndex = 0,
        IProgress<int>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfNegative(firstIndex);
        options ??= new SyntheticChestOptions();
        options.Validate();
        var cases = new SyntheticChestCase[count];
        var done = 0;
        Parallel.For(0, count, new ParallelOptions { CancellationToken = cancellationToken }, n =>
        {
            cases[n] = GenerateCase(seed, firstIndex + n, options);
            progress?.Report(Interlocked.Increment(ref done));
        });
        return cases;
    }

    /// <summary>Generates the single case <paramref name="index"/> of the dataset with seed <paramref name="seed"/>.</summary>
    public static SyntheticChestCase GenerateCase(int seed, int index, SyntheticChestOptions? options = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        options ??= new SyntheticChestOptions();
        options.Validate();
        var random = new Random(SyntheticBrainDataset.MixSeed(seed ^ 0x5EED_C7, index));
        var findings = ChestFindingExtensions.All.ToDictionary(f => f, _ => random.NextDouble() < options.Prevalence);
        var lesions = new List<ChestLesion>();
        var phantom = new ChestPhantom(findings, random, lesions);

        var inPlane = Draw(random, options.InPlaneSpacingMm);
        var slice = Draw(random, options.SliceSpacingMm);
        var shape = new VolumeShape(
            (int)Math.Round(options.FieldOfViewMm / inPlane), (int)Math.Round(options.FieldOfViewMm / inPlane), (int)Math.Round(options.LengthMm / slice));
        var lps = options.Orientation switch
        {
            ChestStorageOrientation.Lps => true,
            ChestStorageOrientation.Ras => false,
            _ => random.NextDouble() < 0.5,
        };
        var sign = lps ? -1.0 : 1.0;

        // The grid's centre voxel sits at the world origin.
        var affine = Affine.FromRowMajor(
        [
            sign * inPlane, 0, 0, -sign * inPlane * (shape.X - 1) / 2,
            0, sign * inPlane, 0, -sign * inPlane * (shape.Y - 1) / 2,
            0, 0, slice, -slice * (shape.Z - 1) / 2,
            0, 0, 0, 1,
        ]);
        var noise = Draw(random, options.NoiseHu);
        var data = phantom.Render(shape, affine, noise, random.Next());
        var report = ChestReportWriter.Write(findings, lesions, options.NegationProbability, random);
        var metadata = new VolumeMetadata
        {
            Format = "memory",
            SourceDataType = VoxelDataType.Float32,
            Description = $"MedVlp synthetic chest CT {index} ({string.Join(", ", findings.Where(f => f.Value).Select(f => f.Key.Key()).DefaultIfEmpty("normal"))})",
        };
        return new SyntheticChestCase(index, new Volume(data, shape, affine, metadata: metadata), findings, report, lesions);
    }

    private static double Draw(Random random, (double Min, double Max) range) => range.Min + ((range.Max - range.Min) * random.NextDouble());
}
