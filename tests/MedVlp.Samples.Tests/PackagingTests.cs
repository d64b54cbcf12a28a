using System.Xml.Linq;
using MedVlp.Losses;
using MedVlp.Testing;

namespace MedVlp.Samples.Tests;

/// <summary>The versions the packaged targets and the runtime check name agree with what the repository builds against.</summary>
public sealed class PackagingTests
{
    [Fact]
    public void TargetsRuntimeCheckAndCentralVersionsAgree()
    {
        var packages = XDocument.Load(Path.Combine(TestData.RepoRoot, "Directory.Packages.props"))
            .Descendants("PackageVersion").ToDictionary(e => (string)e.Attribute("Include")!, e => (string)e.Attribute("Version")!);
        var targets = XDocument.Load(Path.Combine(TestData.RepoRoot, "build", "TorchSharp.Native.targets"));
        string Property(string name) => targets.Descendants(name).Single().Value;

        Assert.Equal(packages["TorchSharp"], Property("MedVlpTorchSharpVersion"));
        Assert.Equal(packages["libtorch-cpu-linux-x64"], Property("MedVlpLibTorchVersion"));
        Assert.Equal(LibTorchRuntime.TorchSharpVersion, packages["TorchSharp"]);
        Assert.Equal(LibTorchRuntime.LibTorchVersion, packages["libtorch-cpu-linux-x64"]);
        Assert.Equal("libtorch-cpu-linux-x64", LibTorchRuntime.CpuPackageId);
    }

    [Fact]
    public void LibTorchLoadsHere()
    {
        // The tests reference libtorch-cpu-linux-x64 and get the GLIBCXX fix: the check passes and TorchSharp works.
        LibTorchRuntime.EnsureAvailable();
        Assert.True(LibTorchRuntime.IsAvailable);
        using var x = TorchSharp.torch.ones(2, 3);
        Assert.Equal(6f, x.sum().item<float>());
    }
}
