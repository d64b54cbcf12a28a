using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace MedVlp.Losses;

/// <summary>
/// Checks, before the first TorchSharp call, that TorchSharp's native libraries load, and says what to do when they do
/// not: which libtorch package and version to add, or what the system loader reported (for example a missing
/// <c>GLIBCXX_3.4.32</c>). <c>VisionLanguageModel.Create</c> and <c>Load</c> call it; call it yourself where your
/// application first uses TorchSharp to get this message instead of TorchSharp's own.
/// </summary>
public static class LibTorchRuntime
{
    /// <summary>The TorchSharp release MedVlp is built against.</summary>
    public const string TorchSharpVersion = "0.107.0";

    /// <summary>The libtorch version that TorchSharp release runs on.</summary>
    public const string LibTorchVersion = "2.10.0";

    private static readonly Lazy<string?> Problem = new(Probe);

    /// <summary>The CPU libtorch package of this platform (for example <c>libtorch-cpu-linux-x64</c>).</summary>
    public static string CpuPackageId => $"libtorch-cpu-{RuntimeInformation.RuntimeIdentifier}";

    /// <summary>Whether TorchSharp's native libraries load in this process (checked once).</summary>
    public static bool IsAvailable => Problem.Value is null;

    /// <summary>Throws when TorchSharp's native libraries cannot load in this process (checked once, then free).</summary>
    /// <exception cref="InvalidOperationException">libtorch is missing or LibTorchSharp does not load; the message says what to add or fix.</exception>
    public static void EnsureAvailable()
    {
        if (Problem.Value is { } problem)
        {
            throw new InvalidOperationException(problem);
        }
    }

    private static string? Probe()
    {
        var assembly = typeof(Tensor).Assembly;
        var add = $"Add the package: `dotnet add package {CpuPackageId} --version {LibTorchVersion}` (or the CUDA libtorch package of version {LibTorchVersion}).";
        var hasLibTorch = NativeLibrary.TryLoad("torch_cpu", assembly, null, out _) || NativeLibrary.TryLoad("torch_cuda", assembly, null, out _)
            || NativeLibrary.TryLoad("libtorch.so", out _);
        if (!hasLibTorch)
        {
            return $"MedVlp: TorchSharp {TorchSharpVersion} needs libtorch {LibTorchVersion}, and this application has none (no torch_cpu or torch_cuda library next to it). {add}";
        }

        try
        {
            NativeLibrary.Load("LibTorchSharp", assembly, null);
            return null;
        }
        catch (DllNotFoundException ex)
        {
            // The runtime lists every path it tried; the lines that are not "cannot open" carry the real reason.
            var lines = ex.Message.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            var reason = lines.FirstOrDefault(l => l.Contains("LibTorchSharp", StringComparison.Ordinal) && !l.Contains("cannot open shared object file", StringComparison.Ordinal))
                ?? ex.Message;
            if (reason.Contains("GLIBCXX", StringComparison.Ordinal))
            {
                return $"MedVlp: TorchSharp's native library does not load: {reason}. The system's libstdc++ is older than TorchSharp's build asks for: " +
                    "build and publish with the MedVlp package's targets, which mark that version need weak (MedVlpMarkGlibcxxWeak=auto or true), and run the output they patched.";
            }

            return $"MedVlp: TorchSharp {TorchSharpVersion} needs libtorch {LibTorchVersion}, and its native library does not load with the libtorch this process found ({reason}). {add}";
        }
    }
}
