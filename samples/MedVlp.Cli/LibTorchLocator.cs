using System.Reflection;
using System.Runtime.InteropServices;

namespace MedVlp.Cli;

/// <summary>
/// Finds libtorch for the commands that run TorchSharp (<c>demo</c>, <c>zeroshot</c>, <c>model</c>).
/// </summary>
/// <remarks>
/// The medvlp tool package does not carry libtorch: the CPU build alone is about 600 MB unpacked (over NuGet.org's
/// package size limit), the file commands (<c>info</c>, <c>convert</c>, <c>preprocess</c>, <c>synth</c>) need none of it,
/// and a CUDA machine wants a different one. Instead, before a TorchSharp command runs, libtorch is looked for
/// (1) next to the application (a project build that references the libtorch package), (2) in <c>$MEDVLP_LIBTORCH</c>
/// (a folder holding libtorch.so), (3) in the NuGet global packages folder (<c>$NUGET_PACKAGES</c> or
/// <c>~/.nuget/packages</c>), where any restore of <c>libtorch-cpu-linux-x64</c> puts it, and loaded from there by path
/// (its RUNPATH <c>$ORIGIN</c> brings libtorch_cpu, libc10 and libgomp; TorchSharp's own library then binds to them by
/// name). The tool's copy of libLibTorchSharp.so carries the GLIBCXX fix (build/TorchSharp.Native.targets).
/// </remarks>
internal static class LibTorchLocator
{
    /// <summary>The libtorch version TorchSharp was built against (from build/TorchSharp.Native.targets).</summary>
    public static string Version { get; } =
        typeof(LibTorchLocator).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().FirstOrDefault(a => a.Key == "MedVlpLibTorchVersion")?.Value ?? "2.10.0";

    private static string Rid => RuntimeInformation.RuntimeIdentifier;

    /// <summary>The CPU libtorch package of this platform.</summary>
    public static string PackageId => $"libtorch-cpu-{Rid}";

    private static string LibraryFile =>
        OperatingSystem.IsWindows() ? "torch.dll" : OperatingSystem.IsMacOS() ? "libtorch.dylib" : "libtorch.so";

    private static string? _loadedFrom;

    /// <summary>Where libtorch was found ("" when next to the application), after a successful <see cref="TryLoad"/>.</summary>
    public static string? LoadedFrom => _loadedFrom;

    /// <summary>Finds and loads libtorch; false with a message naming what to install when it is nowhere.</summary>
    public static bool TryLoad(out string problem)
    {
        problem = "";
        if (_loadedFrom is not null)
        {
            return true;
        }

        var appDir = AppContext.BaseDirectory;
        if (File.Exists(Path.Combine(appDir, LibraryFile)) || File.Exists(Path.Combine(appDir, "runtimes", Rid, "native", LibraryFile)))
        {
            _loadedFrom = "";
            return true;
        }

        var candidates = new List<(string Path, string Origin)>();
        var env = Environment.GetEnvironmentVariable("MEDVLP_LIBTORCH");
        if (!string.IsNullOrEmpty(env))
        {
            candidates.Add((Path.Combine(env, LibraryFile), "$MEDVLP_LIBTORCH"));
        }

        foreach (var root in PackageFolders())
        {
            candidates.Add((Path.Combine(root, PackageId, Version, "runtimes", Rid, "native", LibraryFile), "the NuGet packages folder"));
        }

        foreach (var (path, origin) in candidates)
        {
            if (!File.Exists(path))
            {
                if (origin == "$MEDVLP_LIBTORCH")
                {
                    problem = $"$MEDVLP_LIBTORCH is {env}, which holds no {LibraryFile}.";
                    return false;
                }

                continue;
            }

            try
            {
                NativeLibrary.Load(path);
                _loadedFrom = Path.GetDirectoryName(path);
                return true;
            }
            catch (DllNotFoundException ex)
            {
                problem = $"cannot load libtorch from {path} ({origin}): {ex.Message}";
                return false;
            }
        }

        problem =
            $"this command runs TorchSharp and needs libtorch {Version}, which is neither next to medvlp nor in the NuGet packages folder ({string.Join(", ", PackageFolders())}). " +
            $"Restore it once from any folder: `dotnet new console -o libtorch-restore && dotnet add libtorch-restore package {PackageId} --version {Version}`, " +
            $"or set MEDVLP_LIBTORCH to a folder holding {LibraryFile} {Version}.";
        return false;
    }

    private static IEnumerable<string> PackageFolders()
    {
        var env = Environment.GetEnvironmentVariable("NUGET_PACKAGES");
        if (!string.IsNullOrEmpty(env))
        {
            yield return env;
        }

        var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        if (!string.IsNullOrEmpty(home))
        {
            yield return Path.Combine(home, ".nuget", "packages");
        }
    }
}
