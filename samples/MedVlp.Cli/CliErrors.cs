using System.Text.Json;
using MedVlp.Volumes;

namespace MedVlp.Cli;

/// <summary>
/// Turns expected failures (bad input files, a model package that does not load, an input too large for the resource
/// budget or for this machine's memory) into one clear line on stderr and exit code 2. Anything else is a bug and keeps
/// its stack trace.
/// </summary>
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
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("medvlp: cancelled.");
            return Cancelled;
        }
        catch (OutOfMemoryException ex)
        {
            return Fail($"out of memory ({ex.Message.TrimEnd('.')}): the input needs more memory than this machine can give; lower the budget with --max-voxels or read a smaller volume.");
        }
        catch (Exception ex) when (IsInputError(ex))
        {
            return Fail(ex.Message);
        }
    }

    /// <summary>True for the documented failures of readers, pipelines and model packages (not for bugs).</summary>
    internal static bool IsInputError(Exception ex) => ex is IOException // VolumeFormatException, ModelFormatException, FileNotFound, DirectoryNotFound
        or UnauthorizedAccessException or ArgumentException or InvalidDataException or FormatException or JsonException
        or KeyNotFoundException or MedVlp.Training.RecipeFormatException;

    /// <summary>Prints <paramref name="message"/> as one line on stderr and returns <see cref="BadInput"/>.</summary>
    internal static int Fail(string message)
    {
        var oneLine = string.Join(' ', message.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        Console.Error.WriteLine($"medvlp: error: {oneLine}");
        return BadInput;
    }

    /// <summary>Prints a warning line on stderr.</summary>
    internal static void Warn(string message) => Console.Error.WriteLine($"medvlp: warning: {message}");
}

/// <summary>The resource budget options every command takes (<c>--max-voxels</c>, <c>--max-decompressed-bytes</c>).</summary>
internal static class CliLimits
{
    private static readonly System.CommandLine.Option<long?> MaxVoxels = new("--max-voxels")
    {
        Description = $"The most voxels one volume may have when read, and one preprocessing step may produce (default {ResourceLimits.DefaultMaxVoxels}, 1 GiB as float32).",
        Recursive = true,
    };

    private static readonly System.CommandLine.Option<long?> MaxDecompressed = new("--max-decompressed-bytes")
    {
        Description = $"The most bytes a reader may inflate from gzip/zlib data (default {ResourceLimits.DefaultMaxDecompressedBytes}).",
        Recursive = true,
    };

    /// <summary>Adds the options to the root command (they apply to every subcommand).</summary>
    public static void AddTo(System.CommandLine.Command root)
    {
        root.Options.Add(MaxVoxels);
        root.Options.Add(MaxDecompressed);
    }

    /// <summary>Sets <see cref="ResourceLimits.Default"/> from the parsed options; returns an exit code when they are invalid.</summary>
    public static int? Apply(System.CommandLine.ParseResult parse)
    {
        var voxels = parse.GetValue(MaxVoxels);
        var bytes = parse.GetValue(MaxDecompressed);
        if (voxels is <= 0 || bytes is <= 0)
        {
            return CliErrors.Fail($"{(voxels is <= 0 ? "--max-voxels" : "--max-decompressed-bytes")} must be a positive number.");
        }

        var limits = ResourceLimits.Default;
        if (voxels is { } v)
        {
            limits = limits with { MaxVoxels = v, MaxPreprocessedVoxels = v };
        }

        if (bytes is { } b)
        {
            limits = limits with { MaxDecompressedBytes = b };
        }

        ResourceLimits.Default = limits;
        return null;
    }
}
