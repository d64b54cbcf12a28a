using System.Collections.Immutable;
using System.Text;
using MedVlp.Testing;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace MedVlp.Samples.Tests;

/// <summary>
/// Every <c>```csharp</c> block of README.md, the package READMEs (src/*/README.md) and the sample READMEs compiles
/// against the MedVlp assemblies as a console app's Program.cs (the usings of a new console app plus the block's own).
/// A block may use a variable declared in an earlier block of the same README (the quick start's <c>ct</c>); nothing else
/// is assumed, so a block that misses a using, calls an API that does not exist or passes the wrong types fails.
/// </summary>
public sealed class ReadmeCodeTests
{
    private static readonly Lazy<ImmutableArray<MetadataReference>> References = new(LoadReferences);

    public static TheoryData<string, int> Blocks()
    {
        var data = new TheoryData<string, int>();
        foreach (var file in ReadmeFiles())
        {
            var count = ExtractBlocks(File.ReadAllText(Path.Combine(TestData.RepoRoot, file))).Count;
            for (var n = 0; n < count; n++)
            {
                data.Add(file, n);
            }
        }

        return data;
    }

    [Fact]
    public void TheReadmesHoldCSharpBlocks()
    {
        var files = ReadmeFiles();
        Assert.Contains("README.md", files);
        Assert.Contains("src/MedVlp.Losses/README.md", files);
        Assert.Contains("src/MedVlp.Volumes/README.md", files);
        Assert.Contains("src/MedVlp/README.md", files);
        Assert.True(Blocks().Count >= 10, $"only {Blocks().Count} C# blocks found");
    }

    [Theory]
    [MemberData(nameof(Blocks))]
    public void BlockCompiles(string readme, int index)
    {
        var blocks = ExtractBlocks(File.ReadAllText(Path.Combine(TestData.RepoRoot, readme)));
        var (line, code) = blocks[index];
        var tree = Parse(code);
        var declaredEarlier = blocks.Take(index).SelectMany(b => DeclaredNames(Parse(b.Code))).ToHashSet(StringComparer.Ordinal);
        var hasStatements = tree.GetRoot().DescendantNodes().OfType<GlobalStatementSyntax>().Any();
        var compilation = CSharpCompilation.Create(
            "ReadmeBlock",
            [tree, Parse(ConsoleAppGlobalUsings)],
            References.Value,
            new CSharpCompilationOptions(hasStatements ? OutputKind.ConsoleApplication : OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable));
        var errors = compilation.GetDiagnostics()
            .Where(d => d.Severity == DiagnosticSeverity.Error)
            .Where(d => !(d.Id == "CS0103" && declaredEarlier.Contains(NameIn(d))))
            .ToList();
        Assert.True(errors.Count == 0, $"{readme}, C# block {index + 1} (line {line}) does not compile:\n" +
            string.Join("\n", errors.Select(e => $"  block line {e.Location.GetLineSpan().StartLinePosition.Line + 1}: {e.Id} {e.GetMessage(System.Globalization.CultureInfo.InvariantCulture)}")) + "\n" + code);
    }

    [Fact]
    public void AMissingUsingFails()
    {
        // The check can fail: the Losses README's custom-loss block without its usings does not compile.
        var code = "using var objective = new CompositeLoss<ContrastiveInput>().Add(\"clip\", new ClipLoss());";
        var compilation = CSharpCompilation.Create("x", [Parse(code), Parse(ConsoleAppGlobalUsings)], References.Value, new CSharpCompilationOptions(OutputKind.ConsoleApplication));
        Assert.Contains(compilation.GetDiagnostics(), d => d.Id == "CS0246");
    }

    /// <summary>The implicit usings of a `dotnet new console` app.</summary>
    private const string ConsoleAppGlobalUsings = """
        global using System;
        global using System.Collections.Generic;
        global using System.IO;
        global using System.Linq;
        global using System.Net.Http;
        global using System.Threading;
        global using System.Threading.Tasks;
        """;

    private static SyntaxTree Parse(string code) => CSharpSyntaxTree.ParseText(code, new CSharpParseOptions(LanguageVersion.Latest));

    private static List<string> ReadmeFiles()
    {
        var root = TestData.RepoRoot;
        var files = new List<string> { "README.md" };
        foreach (var folder in new[] { "src", "samples" })
        {
            files.AddRange(Directory.EnumerateDirectories(Path.Combine(root, folder))
                .Select(d => Path.Combine(d, "README.md"))
                .Where(File.Exists)
                .Select(f => Path.GetRelativePath(root, f).Replace('\\', '/'))
                .Order(StringComparer.Ordinal));
        }

        return files;
    }

    /// <summary>The C# blocks (```csharp or ```cs fences) with the line they start on.</summary>
    internal static List<(int Line, string Code)> ExtractBlocks(string markdown)
    {
        var blocks = new List<(int, string)>();
        var lines = markdown.Split('\n');
        for (var n = 0; n < lines.Length; n++)
        {
            var fence = lines[n].Trim();
            if (fence is "```csharp" or "```cs" or "```c#")
            {
                var code = new StringBuilder();
                var start = n + 2;
                for (n++; n < lines.Length && lines[n].Trim() != "```"; n++)
                {
                    code.Append(lines[n].TrimEnd('\r')).Append('\n');
                }

                blocks.Add((start, code.ToString()));
            }
        }

        return blocks;
    }

    private static IEnumerable<string> DeclaredNames(SyntaxTree tree)
    {
        foreach (var node in tree.GetRoot().DescendantNodes())
        {
            switch (node)
            {
                case VariableDeclaratorSyntax v:
                    yield return v.Identifier.ValueText;
                    break;
                case SingleVariableDesignationSyntax d:
                    yield return d.Identifier.ValueText;
                    break;
                case ForEachStatementSyntax f:
                    yield return f.Identifier.ValueText;
                    break;
            }
        }
    }

    private static string NameIn(Diagnostic d) =>
        d.Location.SourceTree?.GetRoot().FindNode(d.Location.SourceSpan, getInnermostNodeForTie: true) is IdentifierNameSyntax id ? id.Identifier.ValueText : "";

    private static ImmutableArray<MetadataReference> LoadReferences()
    {
        var platform = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator);
        var names = platform.Select(Path.GetFileName).ToHashSet(StringComparer.OrdinalIgnoreCase);
        var app = Directory.EnumerateFiles(AppContext.BaseDirectory, "*.dll")
            .Where(f => !names.Contains(Path.GetFileName(f)))
            .Where(f => Path.GetFileName(f) is var n && (n.StartsWith("MedVlp.", StringComparison.Ordinal) || n == "MedVlp.dll" || n.StartsWith("TorchSharp", StringComparison.Ordinal) ||
                n.StartsWith("Microsoft.Extensions.", StringComparison.Ordinal) || n.StartsWith("Microsoft.ML.", StringComparison.Ordinal) || n == "System.Numerics.Tensors.dll"));
        return [.. platform.Concat(app).Where(IsManaged).Select(f => (MetadataReference)MetadataReference.CreateFromFile(f))];
    }

    private static bool IsManaged(string path)
    {
        try
        {
            System.Reflection.AssemblyName.GetAssemblyName(path);
            return true;
        }
        catch (BadImageFormatException)
        {
            return false;
        }
    }
}
