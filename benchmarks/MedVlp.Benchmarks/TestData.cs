namespace MedVlp.Benchmarks;

/// <summary>Finds the fetched test data (scripts/fetch-test-data.sh), as the tests do.</summary>
internal static class TestData
{
    public static string Root
    {
        get
        {
            var env = Environment.GetEnvironmentVariable("MEDVLP_TESTDATA");
            if (!string.IsNullOrEmpty(env))
            {
                return env;
            }

            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                if (System.IO.File.Exists(Path.Combine(dir.FullName, "MedVlp.Sdk.sln")))
                {
                    return Path.Combine(dir.FullName, ".testdata");
                }
            }

            throw new DirectoryNotFoundException("Test data not found: run scripts/fetch-test-data.sh or set MEDVLP_TESTDATA.");
        }
    }

    public static string File(string relative)
    {
        var path = Path.Combine(Root, relative);
        return System.IO.File.Exists(path) || Directory.Exists(path) ? path : throw new FileNotFoundException($"{path} is missing: run scripts/fetch-test-data.sh.", path);
    }
}
