using MedVlp.Data;
using MedVlp.Testing;

namespace MedVlp.Tests.Data;

/// <summary>Manifest parsing and validation: CSV and JSON Lines, with every problem reported by line and field.</summary>
public sealed class ManifestTests
{
    [Fact]
    public void ReadsCsvWithQuotedReportsAndLabels()
    {
        using var dir = TestData.NewTempFolder();
        File.WriteAllText(dir.File("a.nii.gz"), "");
        Directory.CreateDirectory(dir.File("series1"));
        File.WriteAllText(dir.File("m.csv"), "id,path,report,split,diagnosis,age\n" +
            "s1,a.nii.gz,\"Normal, no findings.\nThe diagnosis is CN.\",train,CN,71\n" +
            "s2,series1,\"He said \"\"fine\"\"\",val,AD,80\n");
        var m = Manifest.Load(dir.File("m.csv"));
        Assert.Equal(2, m.Entries.Count);
        var a = m.Entries[0];
        Assert.Equal("s1", a.Id);
        Assert.Equal(dir.File("a.nii.gz"), a.Path);
        Assert.Equal("Normal, no findings.\nThe diagnosis is CN.", a.Report);
        Assert.Equal("train", a.Split);
        Assert.Equal("CN", a.Labels["diagnosis"]);
        Assert.Equal("71", a.Labels["age"]);
        Assert.Equal(2, a.Line);
        Assert.Equal("He said \"fine\"", m.Entries[1].Report);
        Assert.Equal(4, m.Entries[1].Line);
        Assert.Single(m.Split("VAL"));
    }

    [Fact]
    public void ReadsJsonLines()
    {
        using var dir = TestData.NewTempFolder();
        File.WriteAllText(dir.File("a.nii"), "");
        File.WriteAllText(dir.File("m.jsonl"), "{\"path\": \"a.nii\", \"report\": \"r\", \"labels\": {\"nodule\": 1, \"sex\": \"F\", \"ok\": true}}\n\n{\"path\": \"a.nii\", \"split\": \"test\"}\n");
        var m = Manifest.Load(dir.File("m.jsonl"));
        Assert.Equal(["1", "2"], m.Entries.Select(e => e.Id));
        Assert.Equal("1", m.Entries[0].Labels["nodule"]);
        Assert.Equal("true", m.Entries[0].Labels["ok"]);
        Assert.Equal("test", m.Entries[1].Split);
        Assert.Equal(3, m.Entries[1].Line);
    }

    [Theory]
    [InlineData("m.csv", "id,file\n1,a.nii\n", "no \"path\" column")]
    [InlineData("m.csv", "path,report\na.nii,x,y\n", "line 2: 3 fields, but the header has 2")]
    [InlineData("m.csv", "path,id\nmissing.nii,1\n", "line 2: field \"path\":")]
    [InlineData("m.csv", "path,id\na.nii,x\na.nii,x\n", "line 3: field \"id\": \"x\" was already used on line 2")]
    [InlineData("m.csv", "path,id\n,x\n", "line 2: field \"path\": empty")]
    [InlineData("m.csv", "path,id\n", "no entries")]
    [InlineData("m.jsonl", "{\"path\": \"a.nii\"}\n{oops\n", "line 2: not valid JSON")]
    [InlineData("m.jsonl", "{\"path\": 3}\n", "line 1: field \"path\": expected a string")]
    [InlineData("m.jsonl", "{\"path\": \"a.nii\", \"label\": \"x\"}\n", "line 1: unknown field \"label\"")]
    [InlineData("m.jsonl", "{\"path\": \"a.nii\", \"labels\": {\"x\": [1]}}\n", "field \"labels.x\"")]
    [InlineData("m.jsonl", "{\"report\": \"r\"}\n", "line 1: field \"path\": missing")]
    [InlineData("m.txt", "path\na.nii\n", "use .csv or .jsonl")]
    public void ProblemsAreReportedWithLineAndField(string name, string text, string expected)
    {
        using var dir = TestData.NewTempFolder();
        File.WriteAllText(dir.File("a.nii"), "");
        File.WriteAllText(dir.File(name), text);
        var ex = Assert.Throws<ManifestFormatException>(() => Manifest.Load(dir.File(name)));
        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
        Assert.Contains(name, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AllProblemsAreListedAtOnce()
    {
        using var dir = TestData.NewTempFolder();
        File.WriteAllText(dir.File("m.csv"), "path,report\nx1.nii,a\nx2.nii,b\nx3.nii,\n");
        var ex = Assert.Throws<ManifestFormatException>(() => Manifest.Load(dir.File("m.csv"), new ManifestOptions { RequireReport = true }));
        Assert.Equal(4, ex.Problems.Count);
        Assert.Contains(ex.Problems, p => p.StartsWith("line 4: field \"report\"", StringComparison.Ordinal));
    }
}
