using MedVlp.Volumes;

namespace MedVlp.Cli;

/// <summary>Turns expected failures (bad input files) into one clear line on stderr and an exit code.</summary>
internal static class CliErrors
{
    public const int BadInput = 2;
    public const int Cancelled = 130;

    public static int Run(Func<int> action)
    {
        try
        {
            return action();
        }
        catch (Exception ex) when (ex is VolumeFormatException or InvalidDataException or FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException or IOException or ArgumentException)
        {
            Console.Error.WriteLine($"medvlp: error: {ex.Message}");
            return BadInput;
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("medvlp: cancelled.");
            return Cancelled;
        }
    }
}
