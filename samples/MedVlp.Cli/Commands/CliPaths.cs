namespace MedVlp.Cli.Commands;

/// <summary>Finds files the CLI needs at run time.</summary>
internal static class CliPaths
{
    /// <summary>Where <c>medvlp demo</c> writes by default (its model: <c>out/demo/model</c>); the README and scripts/demo.sh use the same.</summary>
    public const string DefaultDemoFolder = "out/demo";

    /// <summary>The repository's bert-base-uncased vocabulary (<c>.testdata/bert/vocab.txt</c>), looked for above the executable and the current folder.</summary>
    public static string FindDefaultVocabulary() => Find(".testdata/bert/vocab.txt", "the BERT vocabulary", "--vocab PATH/vocab.txt");

    /// <summary>The repository's all-MiniLM-L6-v2 ONNX export (<c>.testdata/minilm/model.onnx</c>, fetched with the test data).</summary>
    public static string FindDefaultTextModel() => Find(".testdata/minilm/model.onnx", "the pretrained text model (all-MiniLM-L6-v2)", "--text-model PATH/model.onnx");

    private static string Find(string relative, string what, string option)
    {
        foreach (var start in new[] { AppContext.BaseDirectory, Environment.CurrentDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, relative);
                if (File.Exists(candidate))
                {
                    return candidate;
                }
            }
        }

        throw new FileNotFoundException(
            $"Cannot find {what} {relative} above {AppContext.BaseDirectory} or {Environment.CurrentDirectory}. " +
            $"Run `bash scripts/fetch-test-data.sh` in the repository, or pass {option}.");
    }
}

/// <summary>An <see cref="IProgress{T}"/> that calls its handler synchronously on the reporting thread.</summary>
internal sealed class InlineProgress<T>(Action<T> handler) : IProgress<T>
{
    public void Report(T value) => handler(value);
}
