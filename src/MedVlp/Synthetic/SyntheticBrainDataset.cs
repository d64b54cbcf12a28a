using MathNet.Numerics.Distributions;
using MedVlp.Volumes;

namespace MedVlp.Synthetic;

/// <summary>
/// A seedable synthetic paired dataset modelled on MedBLIP's diagnosis task: brain-like 3D phantoms (head, skull,
/// cortex with sulci, white matter, deep grey matter, ventricles, optional focal lesions) whose anatomy changes with
/// the diagnosis (CN, MCI, AD: larger ventricles, thinner cortex, wider sulci and more atrophy with severity), with
/// nuisance in head size, position, rotation, intensity, bias field and Rician noise, and an EHR-style report per
/// volume (age, sex, MMSE, findings in varied wording, "The diagnosis is X.").
/// </summary>
/// <remarks>
/// Case <c>i</c> of a dataset with seed <c>s</c> depends only on (<c>s</c>, <c>i</c>), so datasets are reproducible and
/// can be generated in parallel or in pieces. Classes are balanced: case <c>i</c> has diagnosis <c>i mod 3</c>.
/// </remarks>
public static class SyntheticBrainDataset
{
    /// <summary>Generates <paramref name="count"/> cases in parallel.</summary>
    /// <param name="count">Number of cases.</param>
    /// <param name="seed">Seed of the whole dataset.</param>
    /// <param name="options">Grid and nuisance options; <see langword="null"/> for the defaults.</param>
    /// <param name="firstIndex">Index of the first case (lets a held-out set continue a training set's sequence).</param>
    /// <param name="progress">Receives the number of finished cases.</param>
    /// <param name="cancellationToken">Stops the generation.</param>
    public static IReadOnlyList<SyntheticBrainCase> Generate(int count, int seed, SyntheticBrainOptions? options = null, int firstIndex = 0,
        IProgress<int>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfNegative(firstIndex);
        options ??= new SyntheticBrainOptions();
        options.Validate();
        var cases = new SyntheticBrainCase[count];
        var done = 0;
        Parallel.For(0, count, new ParallelOptions { CancellationToken = cancellationToken }, n =>
        {
            cases[n] = GenerateCase(seed, firstIndex + n, options);
            var finished = Interlocked.Increment(ref done);
            progress?.Report(finished);
        });
        return cases;
    }

    /// <summary>Generates the single case <paramref name="index"/> of the dataset with seed <paramref name="seed"/>.</summary>
    public static SyntheticBrainCase GenerateCase(int seed, int index, SyntheticBrainOptions? options = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        options ??= new SyntheticBrainOptions();
        options.Validate();
        var random = new Random(MixSeed(seed, index));
        var diagnosis = (CognitiveDiagnosis)(index % 3);
        var subject = DrawSubject(diagnosis, options, random);
        var volume = BrainPhantom.Render(subject, options, random, index);
        var report = ReportWriter.Write(subject, random);
        // A stream of its own, so that adding the EHR text left every volume and report as before.
        var ehr = EhrWriter.Write(subject, new Random(MixSeed(seed ^ 0x4E48, index)));
        return new SyntheticBrainCase(index, volume, subject, report, ehr);
    }

    private static SyntheticSubject DrawSubject(CognitiveDiagnosis diagnosis, SyntheticBrainOptions options, Random random)
    {
        var d = (int)diagnosis;
        var age = (int)Math.Round(Math.Clamp(Normal.Sample(random, 71 + (2.5 * d), 5.5), 55, 92));
        var isFemale = random.NextDouble() < 0.55;
        var severity = d + Normal.Sample(random, 0, options.SeverityJitter) + (0.04 * (age - (71 + (2.5 * d))) / 5.5);
        severity = Math.Max(severity, -0.3);
        var mmse = diagnosis switch
        {
            CognitiveDiagnosis.CognitivelyNormal => 30 - Math.Abs(Normal.Sample(random, 0, 1.3)),
            CognitiveDiagnosis.MildCognitiveImpairment => Normal.Sample(random, 25.5, 1.6),
            _ => Normal.Sample(random, 19.5, 3.0),
        };
        mmse -= 1.5 * (severity - d);
        var mmseClamped = (int)Math.Round(Math.Clamp(mmse, d == 2 ? 8 : 18, d == 0 ? 30 : d == 1 ? 29 : 25));
        var lesions = random.NextDouble() < options.LesionProbability ? random.Next(2, 7) : 0;
        return new SyntheticSubject(
            diagnosis, age, isFemale, mmseClamped, severity,
            VentricleScale: 1 + (0.5 * severity),
            CortexThicknessMm: Math.Max(1.5, 5.0 - (1.0 * severity)),
            AtrophyGapMm: Math.Max(0.5, 2.0 + (2.2 * severity)),
            LesionCount: lesions);
    }

    /// <summary>SplitMix64 finaliser of (seed, index): independent, platform-stable streams per case.</summary>
    internal static int MixSeed(int seed, int index)
    {
        var z = ((ulong)(uint)seed << 32) ^ (uint)index;
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        return (int)(z & 0x7FFFFFFF);
    }
}
