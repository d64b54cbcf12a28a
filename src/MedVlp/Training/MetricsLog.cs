using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace MedVlp.Training;

/// <summary>
/// <c>metrics.jsonl</c>: one JSON object per line, flushed as it is written — <c>{"step", "epoch", "stage", "lr",
/// "examples_per_s", "loss": {"total", term...}}</c> after every step and <c>{"step", "eval": {...}}</c> after every
/// evaluation. A resumed run first drops the lines of steps after its checkpoint, so the file always matches the weights.
/// </summary>
public sealed class MetricsLog : IDisposable
{
    private readonly StreamWriter _writer;

    /// <summary>Opens (or creates) <paramref name="path"/>; lines of steps after <paramref name="keepUpToStep"/> are removed.</summary>
    public MetricsLog(string path, long keepUpToStep)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Path = path;
        if (File.Exists(path))
        {
            var kept = File.ReadLines(path).Where(line => StepOf(line) is { } s && s <= keepUpToStep).ToArray();
            File.WriteAllLines(path, kept);
        }

        _writer = new StreamWriter(new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read), new UTF8Encoding(false));
    }

    /// <summary>The file.</summary>
    public string Path { get; }

    /// <summary>Appends a step's line.</summary>
    public void WriteStep(TrainingProgress p)
    {
        ArgumentNullException.ThrowIfNull(p);
        var loss = new JsonObject();
        foreach (var (k, v) in p.Losses)
        {
            loss[k] = Finite(v);
        }

        Write(new JsonObject
        {
            ["step"] = p.Step,
            ["epoch"] = p.Epoch,
            ["stage"] = p.Stage,
            ["lr"] = p.LearningRate,
            ["examples_per_s"] = Math.Round(p.ExamplesPerSecond, 3),
            ["loss"] = loss,
        });
    }

    /// <summary>Appends an evaluation's line.</summary>
    public void WriteEvaluation(long step, IReadOnlyDictionary<string, double> metrics)
    {
        ArgumentNullException.ThrowIfNull(metrics);
        var eval = new JsonObject();
        foreach (var (k, v) in metrics)
        {
            eval[k] = Finite(v);
        }

        Write(new JsonObject { ["step"] = step, ["eval"] = eval });
    }

    /// <summary>Reads a metrics file back: per step the losses, and the evaluations.</summary>
    public static (SortedDictionary<long, Dictionary<string, double>> Losses, SortedDictionary<long, double> Rates, SortedDictionary<long, Dictionary<string, double>> Evaluations) Read(string path)
    {
        var losses = new SortedDictionary<long, Dictionary<string, double>>();
        var rates = new SortedDictionary<long, double>();
        var evals = new SortedDictionary<long, Dictionary<string, double>>();
        if (!File.Exists(path))
        {
            return (losses, rates, evals);
        }

        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var reader = new StreamReader(stream);
        while (reader.ReadLine() is { } line)
        {
            JsonNode? node;
            try
            {
                node = JsonNode.Parse(line);
            }
            catch (JsonException)
            {
                continue;
            }

            if (node?["step"]?.GetValue<long>() is not { } step)
            {
                continue;
            }

            if (node["loss"] is JsonObject l)
            {
                losses[step] = l.Where(kv => kv.Value is not null).ToDictionary(kv => kv.Key, kv => kv.Value!.GetValue<double>());
                rates[step] = node["lr"]?.GetValue<double>() ?? double.NaN;
            }

            if (node["eval"] is JsonObject e)
            {
                evals[step] = e.Where(kv => kv.Value is not null).ToDictionary(kv => kv.Key, kv => kv.Value!.GetValue<double>());
            }
        }

        return (losses, rates, evals);
    }

    /// <summary>Closes the file.</summary>
    public void Dispose() => _writer.Dispose();

    private static double? Finite(double v) => double.IsFinite(v) ? v : null;

    private void Write(JsonObject line)
    {
        _writer.WriteLine(line.ToJsonString());
        _writer.Flush();
    }

    private static long? StepOf(string line)
    {
        try
        {
            return JsonNode.Parse(line)?["step"]?.GetValue<long>();
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException)
        {
            return null;
        }
    }
}
