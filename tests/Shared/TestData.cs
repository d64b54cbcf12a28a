namespace MedVlp.Testing;

/// <summary>
/// Locates the real third-party test data fetched by <c>scripts/fetch-test-data.sh</c> (one place for all tests).
/// A missing file fails the test with a message saying how to fetch it; it is never skipped.
/// </summary>
internal static class TestData
{
    private static readonly Lazy<string> RootPath = new(FindRoot);

    /// <summary>The data folder: <c>$MEDVLP_TESTDATA</c>, else <c>&lt;repo&gt;/.testdata</c>.</summary>
    public static string Root => RootPath.Value;

    /// <summary>The repository root (the folder holding MedVlp.Sdk.sln).</summary>
    public static string RepoRoot { get; } = FindRepoRoot();

    /// <summary>The absolute path of a fetched file; throws if it is missing.</summary>
    public static string File(string relative)
    {
        var path = System.IO.Path.Combine(Root, relative);
        if (!System.IO.File.Exists(path) && !Directory.Exists(path))
        {
            throw new FileNotFoundException($"Test data file {path} is missing. Run `bash scripts/fetch-test-data.sh` (the README's test command does).", path);
        }

        return path;
    }

    /// <summary>The absolute path of a golden-value file under tests/golden/data (copied next to the test assembly).</summary>
    public static string Golden(string relative)
    {
        var path = System.IO.Path.Combine(AppContext.BaseDirectory, "golden", relative);
        return System.IO.File.Exists(path) ? path : throw new FileNotFoundException($"Golden file {path} is missing; regenerate it with the scripts in tests/golden.", path);
    }

    /// <summary>A fresh empty temporary folder, deleted by the caller's <see cref="IDisposable"/>.</summary>
    public static TempFolder NewTempFolder() => new();

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (System.IO.File.Exists(System.IO.Path.Combine(dir.FullName, "MedVlp.Sdk.sln")))
            {
                return dir.FullName;
            }
        }

        throw new DirectoryNotFoundException("Cannot find the repository root (MedVlp.Sdk.sln) above " + AppContext.BaseDirectory);
    }

    private static string FindRoot()
    {
        var env = Environment.GetEnvironmentVariable("MEDVLP_TESTDATA");
        return !string.IsNullOrEmpty(env) ? env : System.IO.Path.Combine(RepoRoot, ".testdata");
    }
}

/// <summary>A temporary folder removed on dispose.</summary>
internal sealed class TempFolder : IDisposable
{
    public TempFolder()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "medvlp-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // Best effort.
        }
    }
}
