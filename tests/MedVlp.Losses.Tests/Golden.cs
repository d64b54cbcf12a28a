using System.Text.Json;
using MedVlp.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Losses.Tests;

/// <summary>One case of tests/golden/data/losses.json (made by tests/golden/make_loss_golden.py).</summary>
internal sealed class GoldenCase
{
    private readonly JsonElement element;

    public GoldenCase(JsonElement element)
    {
        this.element = element;
        Name = element.GetProperty("name").GetString()!;
        Kind = element.GetProperty("kind").GetString()!;
    }

    public string Name { get; }

    public string Kind { get; }

    public double Value => element.GetProperty("value").GetDouble();

    public IReadOnlyDictionary<string, double> Terms =>
        element.GetProperty("terms").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetDouble());

    public double Param(string name) => element.GetProperty("params").GetProperty(name).GetDouble();

    public int[] Ints(string name) => element.GetProperty("params").GetProperty(name).EnumerateArray().Select(x => x.GetInt32()).ToArray();

    public bool Flag(string name) => element.GetProperty("params").GetProperty(name).GetBoolean();

    public bool HasGrad(string name) => element.GetProperty("grads").TryGetProperty(name, out _);

    /// <summary>An input as a float64 leaf tensor (requires_grad when asked).</summary>
    public Tensor Input(string name, bool requiresGrad = true) => ToTensor(element.GetProperty("inputs").GetProperty(name), requiresGrad);

    public (long[] Shape, double[] Data) InputArray(string name) => ToArray(element.GetProperty("inputs").GetProperty(name));

    public (long[] Shape, double[] Data) Output(string name) => ToArray(element.GetProperty("outputs").GetProperty(name));

    /// <summary>Copies the inputs named like the module's parameters into them (the module must be float64 already).</summary>
    public void LoadParameters(nn.Module module)
    {
        using var noGrad = no_grad();
        var inputs = element.GetProperty("inputs");
        var loaded = 0;
        foreach (var (name, parameter) in module.named_parameters())
        {
            if (inputs.TryGetProperty(name, out var value))
            {
                var (shape, data) = ToArray(value);
                using var source = tensor(data, shape, ScalarType.Float64);
                parameter.copy_(source);
                loaded++;
            }
        }

        Assert.True(loaded > 0, $"{Name}: no parameter of {module.GetName()} found in the golden inputs");
    }

    public (long[] Shape, double[] Data) Grad(string name) => ToArray(element.GetProperty("grads").GetProperty(name));

    public override string ToString() => Name;

    private static Tensor ToTensor(JsonElement e, bool requiresGrad)
    {
        var (shape, data) = ToArray(e);
        return tensor(data, shape, ScalarType.Float64).requires_grad_(requiresGrad);
    }

    private static (long[] Shape, double[] Data) ToArray(JsonElement e)
    {
        var shape = e.GetProperty("shape").EnumerateArray().Select(x => x.GetInt64()).ToArray();
        var data = e.GetProperty("data").EnumerateArray().Select(x => x.GetDouble()).ToArray();
        return (shape, data);
    }
}

/// <summary>Loads golden cases and compares tensors to them.</summary>
internal static class Golden
{
    private static readonly Lazy<List<GoldenCase>> Cases = new(() =>
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(TestData.Golden("losses.json")));
        return doc.RootElement.GetProperty("cases").EnumerateArray().Select(e => new GoldenCase(e.Clone())).ToList();
    });

    public const double RelativeTolerance = 1e-5;

    public static IEnumerable<object[]> Names(string kind)
    {
        var names = Cases.Value.Where(c => c.Kind == kind).Select(c => new object[] { c.Name }).ToList();
        return names.Count > 0 ? names : throw new InvalidOperationException($"No golden cases of kind {kind}.");
    }

    public static GoldenCase Get(string name) => Cases.Value.Single(c => c.Name == name);

    public static void AssertClose(double expected, double actual, string what)
    {
        var tolerance = RelativeTolerance * Math.Max(Math.Abs(expected), 1e-8);
        Assert.True(Math.Abs(expected - actual) <= tolerance, $"{what}: expected {expected:R}, got {actual:R} (|diff| {Math.Abs(expected - actual):E2} > {tolerance:E2})");
    }

    /// <summary>Element-wise: |a - e| &lt;= rtol * (|e| + max|e| * 1e-3), so near-zero entries are judged against the array's scale.</summary>
    public static void AssertClose((long[] Shape, double[] Data) expected, Tensor? actual, string what)
    {
        Assert.NotNull(actual);
        Assert.Equal(expected.Shape, actual!.shape);
        var values = actual.to_type(ScalarType.Float64).data<double>().ToArray();
        var scale = expected.Data.Length == 0 ? 0 : expected.Data.Max(Math.Abs);
        var worst = 0.0;
        for (var i = 0; i < values.Length; i++)
        {
            var tolerance = RelativeTolerance * (Math.Abs(expected.Data[i]) + (scale * 1e-3) + 1e-12);
            var diff = Math.Abs(values[i] - expected.Data[i]);
            Assert.True(diff <= tolerance, $"{what}[{i}]: expected {expected.Data[i]:R}, got {values[i]:R}");
            worst = Math.Max(worst, diff / (Math.Abs(expected.Data[i]) + 1e-12));
        }
    }

    public static void AssertOutput(GoldenCase c, LossOutput output)
    {
        AssertClose(c.Value, output.Total.ToDouble(), c.Name + " value");
        foreach (var (name, value) in c.Terms)
        {
            Assert.True(output.Terms.ContainsKey(name), $"{c.Name}: missing term {name}");
            AssertClose(value, output.Terms[name].ToDouble(), $"{c.Name} term {name}");
        }
    }
}
