// AskMedBlip: ask a MedBLIP model package about a brain volume: a free question (visual question answering), the
// generative diagnosis (the answer to MedBLIP's question, mapped to CN / MCI / AD) and the contrastive one.
// Usage: dotnet run -c Release --project samples/AskMedBlip -- MODEL VOLUME [QUESTION] [EHR TEXT]
using System.Diagnostics;
using System.Globalization;
using MedVlp;
using MedVlp.Architectures.MedBlip;
using MedVlp.Synthetic;
using MedVlp.Volumes;
using MedVlp.Volumes.IO;

if (args.Length < 2)
{
    Console.Error.WriteLine("usage: AskMedBlip MODEL VOLUME [QUESTION] [EHR TEXT]   (MODEL: a medblip model package folder, e.g. from `medvlp demo --arch medblip`; VOLUME: NIfTI, DICOM, MetaImage, NRRD)");
    return 2;
}

CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
var clock = Stopwatch.StartNew();

// 1. Load the package (weights, configuration, both tokenizers, preprocessing) and read the volume.
using var model = VisionLanguageModel.Load(args[0]);
var assistant = new MedBlipAssistant(model); // throws when the package is not a MedBLIP
Volume volume = VolumeReader.Read(args[1]);
Console.WriteLine($"model:      {model.Architecture}, {model.Module.parameters().Sum(p => p.numel()):N0} parameters; preprocessing {model.Preprocessing}");
Console.WriteLine($"volume:     {volume.Metadata.Format}, {volume.Shape} voxels of {volume.Spacing}");

// 2. A free question. The prompt is "<EHR text> Question: ... Answer: " followed by the 32 (tiny: 8) image tokens; greedy
//    decoding with the key/value cache until end-of-text.
var question = args.Length > 2 ? args[2] : "What will this subject be diagnosed with?";
string? ehr = args.Length > 3 ? args[3] : null;
var answer = assistant.Ask([volume], [question], [ehr], maxTokens: 16)[0];
Console.WriteLine($"question:   {question}");
Console.WriteLine($"answer:     {answer}");

// 3. The diagnosis two ways: generated (the answer must name a label; otherwise it is reported as unmatched) and
//    contrastive (the query features' similarity to each "Question: ... Answer: label" text).
MedBlipDiagnosis generative = assistant.DiagnoseGenerative([volume], [ehr])[0];
CognitiveDiagnosis contrastive = assistant.DiagnoseContrastive([volume])[0];
Console.WriteLine($"generative: {generative.Diagnosis?.Code() ?? "unmatched"} (\"{generative.Answer}\")");
Console.WriteLine($"contrastive: {contrastive.Code()} ({contrastive.LabelName()})");
Console.WriteLine($"done in {clock.Elapsed.TotalSeconds:F1} s");
return 0;
