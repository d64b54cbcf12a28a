using System.CommandLine;
using MedVlp.Volumes;
using MedVlp.Volumes.IO;
using MedVlp.Volumes.IO.Nifti;

namespace MedVlp.Cli.Commands;

/// <summary><c>medvlp convert IN OUT.nii[.gz] [--series UID] [--original-type] [--orient CODE]</c>: any readable volume to NIfTI.</summary>
internal static class ConvertCommand
{
    public static Command Create()
    {
        var input = new Argument<string>("input") { Description = "A volume: NIfTI, MetaImage (.mha/.mhd), NRRD (.nrrd/.nhdr) or a DICOM series." };
        var output = new Argument<string>("output") { Description = "The NIfTI file to write: .nii, .nii.gz (gzip) or .hdr/.img." };
        var series = new Option<string?>("--series") { Description = "For a DICOM folder with several series: the SeriesInstanceUID to convert." };
        var original = new Option<bool>("--original-type") { Description = "Keep the on-disk element type and scaling instead of float32." };
        var orient = new Option<string?>("--orient") { Description = "Reorient (flip/permute, no resampling) to axis codes such as RAS or LPS first." };
        var command = new Command("convert", "Convert any readable volume to NIfTI (affine, frames and values preserved).")
        {
            input,
            output,
            series,
            original,
            orient,
        };
        command.SetAction((parse, cancellationToken) => Task.FromResult(CliErrors.Run(() =>
        {
            var outPath = parse.GetValue(output)!;
            var bare = outPath.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? outPath[..^3] : outPath;
            if (!bare.EndsWith(".nii", StringComparison.OrdinalIgnoreCase) && !bare.EndsWith(".hdr", StringComparison.OrdinalIgnoreCase)
                && !bare.EndsWith(".img", StringComparison.OrdinalIgnoreCase))
            {
                throw new ArgumentException($"{outPath}: the output must end in .nii, .nii.gz, .hdr or .img.");
            }

            var options = new VolumeReadOptions { SeriesInstanceUid = parse.GetValue(series) };
            var volume = VolumeReader.Read(parse.GetValue(input)!, options, cancellationToken);
            if (parse.GetValue(orient) is { } code)
            {
                volume = volume.Reorient(code);
            }

            NiftiWriter.Write(volume, outPath, new NiftiWriteOptions
            {
                StorageType = parse.GetValue(original) ? NiftiStorageType.Original : NiftiStorageType.Float32,
            }, cancellationToken);
            Console.WriteLine($"{outPath}: {volume}");
            return 0;
        })));
        return command;
    }
}
