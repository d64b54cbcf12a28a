using System.Diagnostics;
using MedVlp.Testing;

namespace MedVlp.Retrieval.Tests;

/// <summary>Smoke test of samples/CaseRetrieval: archive, embed, index, five similar cases with reports.</summary>
public sealed class CaseRetrievalSampleTests
{
    [Fact]
    public async Task PrintsFiveSimilarCasesWithReports()
    {
        using var dir = TestData.NewTempFolder();
        var model = EmbedFixture.SaveModel(dir.Path);
        var info = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "CaseRetrieval.dll"), "--model", model, "--out", dir.File("run"), "--cases", "9" })
        {
            info.ArgumentList.Add(a);
        }

        info.Environment["NO_COLOR"] = "1";
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        await process.WaitForExitAsync(timeout.Token);
        var output = await stdout;
        Assert.True(process.ExitCode == 0, await stderr + output);
        Assert.Contains("the 5 most similar of 9 archived cases", output, StringComparison.Ordinal);
        Assert.Contains("of 5 share the new volume's diagnosis", output, StringComparison.Ordinal);
        Assert.Contains("The diagnosis is", output, StringComparison.Ordinal);
        Assert.Equal(5, output.Split('\n').Count(l => l.Contains("case_00", StringComparison.Ordinal)));
        using var index = ExactIndex.Open(dir.File("run/index"));
        Assert.Equal(9, index.Count);
    }
}
