using MedVlp.Volumes;
using MedVlp.Volumes.IO.Dicom;
using SharpFuzz;

// Fuzz target: any input must either read as a volume or end in VolumeFormatException. Anything else
// (IndexOutOfRange, OutOfMemory, an endless loop caught by AFL's timeout) is a bug.
//   medvlp-fuzz                 run under afl-fuzz (SharpFuzz out-of-process mode)
//   medvlp-fuzz --replay FILES  run inputs once each without AFL (to check crashes and turn them into tests)
var scratch = Path.Combine(Path.GetTempPath(), $"medvlp-fuzz-{Environment.ProcessId}.dcm");
if (args.Length > 0 && args[0] == "--replay")
{
    var failures = 0;
    foreach (var file in args.Skip(1))
    {
        try
        {
            Target(File.OpenRead(file));
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

Fuzzer.OutOfProcess.Run(stream => Target(stream));
return 0;

void Target(Stream input)
{
    using (input)
    using (var file = File.Create(scratch))
    {
        input.CopyTo(file);
    }

    try
    {
        DicomSeriesReader.Read(scratch, new MedVlp.Volumes.IO.VolumeReadOptions { MaxVoxels = 1 << 24 });
    }
    catch (VolumeFormatException)
    {
        // The documented outcome for bad input.
    }
}
