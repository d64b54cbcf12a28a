using MedVlp.Serialization;
using MedVlp.Volumes;
using MedVlp.Volumes.IO;
using MedVlp.Volumes.IO.Dicom;
using MedVlp.Volumes.IO.Nifti;
using SharpFuzz;

// Fuzz targets: any input must either read as a volume or end in VolumeFormatException (safetensors: read as a
// validated header or end in ModelFormatException). Anything else
// (IndexOutOfRange, OutOfMemory, an endless loop caught by AFL's timeout) is a bug.
//   medvlp-fuzz TARGET                  run under afl-fuzz (SharpFuzz out-of-process mode); TARGET = dicom | nifti | safetensors
//   medvlp-fuzz TARGET --replay FILES   run inputs once each without AFL (to check crashes and turn them into tests);
//                                       use an uninstrumented build (run-fuzz.sh publishes one to out-replay/)
// Nothing from MedVlp.Volumes may run before Fuzzer.OutOfProcess.Run: instrumented code needs AFL's trace map.
if (args.Length == 0 || args[0] is not ("dicom" or "nifti" or "safetensors"))
{
    Console.Error.WriteLine("usage: MedVlp.Fuzz dicom|nifti|safetensors [--replay FILE...]");
    return 2;
}

var target = args[0];
var scratch = Path.Combine(Path.GetTempPath(), $"medvlp-fuzz-{Environment.ProcessId}.{target switch { "nifti" => "nii", "safetensors" => "safetensors", _ => "dcm" }}");
if (args.Length > 1 && args[1] == "--replay")
{
    var failures = 0;
    foreach (var file in args.Skip(2))
    {
        try
        {
            Run(File.OpenRead(file));
            Console.WriteLine($"ok      {file}");
        }
#pragma warning disable CA1031 // replay reports every failure kind
        catch (Exception ex)
#pragma warning restore CA1031
        {
            failures++;
            Console.WriteLine($"CRASH   {file}: {ex.GetType().Name}: {ex.Message}");
        }
    }

    return failures == 0 ? 0 : 1;
}

Fuzzer.OutOfProcess.Run(stream => Run(stream));
return 0;

void Run(Stream input)
{
    using (input)
    using (var file = File.Create(scratch))
    {
        input.CopyTo(file);
    }

    if (target == "safetensors")
    {
        // The header parser and every check made before tensor data is allocated (length, JSON, dtypes, shapes,
        // offsets tiling the data section exactly).
        try
        {
            _ = Safetensors.ReadHeader(scratch);
        }
        catch (ModelFormatException)
        {
            // The documented outcome for bad input.
        }

        return;
    }

    try
    {
        // NIfTI: the reader sniffs gzip by content, so gzipped and plain inputs both reach the header parser.
        var options = new VolumeReadOptions { MaxVoxels = 1 << 24 };
        _ = target == "nifti" ? NiftiReader.Read(scratch, options) : DicomSeriesReader.Read(scratch, options);
    }
    catch (VolumeFormatException)
    {
        // The documented outcome for bad input.
    }
}
