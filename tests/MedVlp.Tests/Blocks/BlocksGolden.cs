using MedVlp.Serialization;
using MedVlp.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Tests.Blocks;

/// <summary>Loads tests/golden/data/blocks_golden.safetensors (made by tests/golden/make_blocks_golden.py) and compares a block against one of its cases.</summary>
internal static class BlocksGolden
{
    public const double Tolerance = 1e-5;

    // Loaded once per file for the whole run and kept outside every dispose scope (the first caller may be inside one).
    private static readonly Dictionary<string, Lazy<Dictionary<string, Tensor>>> Files = new(StringComparer.Ordinal);
    private static readonly AsyncLocal<string> Current = new();

    private static Lazy<Dictionary<string, Tensor>> All
    {
        get
        {
            var file = Current.Value ?? "blocks_golden.safetensors";
            lock (Files)
            {
                if (!Files.TryGetValue(file, out var lazy))
                {
                    Files[file] = lazy = new(() => GoldenTensors.Load(file));
                }

                return lazy;
            }
        }
    }

    /// <summary>Reads the golden tensors of <paramref name="file"/> (under tests/golden/data) in this async flow from now on.</summary>
    public static void Use(string file) => Current.Value = file;

    public static Tensor Get(string key) => All.Value.TryGetValue(key, out var t) ? t : throw new KeyNotFoundException($"golden key {key}");

    /// <summary>
    /// Loads the case's weights into <paramref name="module"/> (its parameter names must be exactly the golden ones), runs
    /// <paramref name="run"/> on the case's inputs, and checks the output and the gradients of every parameter and
    /// floating input of sum(output * probe), or of the returned loss. Returns the largest absolute difference seen.
    /// </summary>
    public static double Check(string name, nn.Module module, Func<IReadOnlyDictionary<string, Tensor>, (Tensor Output, Tensor? Loss)> run, Func<string, bool>? include = null)
    {
        using var scope = NewDisposeScope();
        var prefix = name + "/param/";
        var golden = All.Value.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal)).Select(k => k[prefix.Length..]).Order(StringComparer.Ordinal).ToArray();
        var parameters = module.named_parameters().Where(p => include is null || include(p.name)).ToDictionary(p => p.name, p => p.parameter);
        Assert.Equal(golden, parameters.Keys.Order(StringComparer.Ordinal).ToArray());
        using (no_grad())
        {
            foreach (var (key, p) in parameters)
            {
                p.copy_(Get(prefix + key));
            }
        }

        module.eval();
        var inputPrefix = name + "/input/";
        var inputs = All.Value.Where(kv => kv.Key.StartsWith(inputPrefix, StringComparison.Ordinal))
            .ToDictionary(kv => kv.Key[inputPrefix.Length..], kv => kv.Value.is_floating_point() ? kv.Value.clone().requires_grad_(true) : kv.Value.clone());
        var (output, loss) = run(inputs);
        var worst = AssertClose(Get(name + "/output"), output, $"{name} output");
        if (loss is not null)
        {
            worst = Math.Max(worst, AssertClose(Get(name + "/loss").reshape([]), loss, $"{name} loss"));
        }
        else
        {
            loss = (output * Get(name + "/probe")).sum();
        }

        loss.backward();
        foreach (var (key, p) in parameters)
        {
            if (p.grad is null)
            {
                // A parameter the forward did not use (a mask token without a mask): the reference gradient is zero.
                Assert.True(Get($"{name}/grad/{key}").abs().max().ToDouble() == 0, $"{name}: no gradient reached {key}");
                continue;
            }

            worst = Math.Max(worst, AssertClose(Get($"{name}/grad/{key}"), p.grad!, $"{name} grad {key}"));
        }

        foreach (var (key, input) in inputs.Where(kv => kv.Value.is_floating_point()))
        {
            Assert.True(input.grad is not null, $"{name}: no gradient reached input {key}");
            worst = Math.Max(worst, AssertClose(Get($"{name}/grad_input/{key}"), input.grad!, $"{name} grad input {key}"));
        }

        return worst;
    }

    /// <summary>|actual - expected| &lt;= 1e-5 (1 + |expected|) everywhere; returns the largest absolute difference.</summary>
    public static double AssertClose(Tensor expected, Tensor actual, string what)
    {
        Assert.True(expected.shape.SequenceEqual(actual.shape), $"{what}: expected shape [{string.Join(", ", expected.shape)}], got [{string.Join(", ", actual.shape)}]");
        var e = expected.detach().to(ScalarType.Float64).contiguous().data<double>().ToArray();
        var a = actual.detach().to(ScalarType.Float64).contiguous().data<double>().ToArray();
        var worst = 0.0;
        for (var i = 0; i < e.Length; i++)
        {
            var diff = Math.Abs(e[i] - a[i]);
            worst = Math.Max(worst, diff);
            Assert.True(diff <= Tolerance * (1 + Math.Abs(e[i])), $"{what}[{i}]: expected {e[i]}, got {a[i]} (diff {diff:E2})");
        }

        return worst;
    }
}
