// QuickStart: read a volume, look at its geometry, preprocess it as a model was trained, embed it, classify it
// zero-shot. Usage: dotnet run -c Release --project samples/QuickStart -- VOLUME MODEL [NAME=PROMPT ...]
using System.Diagnostics;
using System.Globalization;
using MedVlp;
using MedVlp.Inference;
using MedVlp.Volumes;
using MedVlp.Volumes.IO;

if (args.Length < 2)
{
    Console.Error.WriteLine("usage: QuickStart VOLUME MODEL [NAME=PROMPT ...]   (VOLUME: NIfTI, DICOM file or folder, MetaImage, NRRD; MODEL: a model package folder)");
    return 2;
}

CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
var clock = Stopwatch.StartNew();

// 1. Read. Any supported format; voxels are float, the affine maps voxel indices (i, j, k) to RAS+ millimetres.
Volume volume = VolumeReader.Read(args[0]);
VoxelStatistics stats = volume.GetStatistics();
var (cx, cy, cz) = volume.Affine.Apply((volume.Shape.X - 1) / 2.0, (volume.Shape.Y - 1) / 2.0, (volume.Shape.Z - 1) / 2.0);
Console.WriteLine($"read:       {volume.Metadata.Format}, {volume.Shape} voxels of {volume.Spacing}, orientation {volume.Orientation}");
Console.WriteLine($"            values {stats.Min:G5} .. {stats.Max:G5} (mean {stats.Mean:G5}); centre voxel at ({cx:F1}, {cy:F1}, {cz:F1}) mm RAS+");

// 2. Preprocess. A model package carries the pipeline it was trained with; Embed applies it itself, shown here to see it.
using var model = VisionLanguageModel.Load(args[1]);
Volume input = model.Preprocessing.Apply(volume);
VoxelStatistics inputStats = input.GetStatistics();
Console.WriteLine($"preprocess: {model.Preprocessing}");
Console.WriteLine($"            -> {input.Shape} voxels of {input.Spacing}, values {inputStats.Min:G4} .. {inputStats.Max:G4}");

// 3. Embed. L2-normalised; Embed(IReadOnlyList<Volume>) batches many volumes.
float[] embedding = model.VolumeEncoder.Embed(volume);
var norm = Math.Sqrt(embedding.Sum(e => (double)e * e));
Console.WriteLine($"embed:      {embedding.Length} floats, norm {norm:F4}, first [{string.Join(", ", embedding.Take(4).Select(e => e.ToString("F4", CultureInfo.InvariantCulture)))}]");

// 4. Zero-shot. Labels are text prompts (several prompts of one label are averaged); the default ones are MedBLIP's task.
IReadOnlyList<ZeroShotLabel> labels = args.Length > 2
    ? [.. args.Skip(2).Select(a => a.Split('=', 2)).GroupBy(p => p[0]).Select(g => new ZeroShotLabel(g.Key, [.. g.Select(p => p.Length > 1 ? p[1] : p[0])]))]
    :
    [
        new ZeroShotLabel("CN", ["The diagnosis is cognitively normal.", "normal ventricles, no atrophy"]),
        new ZeroShotLabel("MCI", ["The diagnosis is mild cognitive impairment.", "mildly enlarged ventricles and mild atrophy"]),
        new ZeroShotLabel("AD", ["The diagnosis is Alzheimer's disease.", "severely enlarged ventricles with marked atrophy"]),
    ];
var classifier = model.CreateZeroShotClassifier(labels);
ZeroShotPrediction prediction = classifier.Classify(volume);
Console.WriteLine($"zero-shot:  {prediction.Label} ({string.Join(", ", classifier.Labels.Select((l, n) => $"{l.Name} {prediction.Probabilities[n]:F3}"))})");
Console.WriteLine($"done in {clock.Elapsed.TotalSeconds:F1} s");
return 0;
