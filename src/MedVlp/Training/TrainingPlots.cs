using System.Globalization;

namespace MedVlp.Training;

/// <summary>
/// PNG plots of a run, drawn with ScottPlot from <c>metrics.jsonl</c>: one per loss term (<c>loss-total.png</c>,
/// <c>loss-clip.png</c>, ...) with its running mean, the learning rate, and one per evaluation metric. Each file is
/// replaced atomically, so a viewer never sees half a picture.
/// </summary>
public static class TrainingPlots
{
    private static readonly string[] FontFiles =
    [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
        "/Library/Fonts/Arial.ttf",
        "C:\\Windows\\Fonts\\arial.ttf",
    ];

    private static readonly Lazy<string?> FontFile = new(() => FontFiles.FirstOrDefault(File.Exists));

    /// <summary>Draws every plot of <paramref name="metricsPath"/> into <paramref name="directory"/>; returns the files written.</summary>
    public static IReadOnlyList<string> Write(string metricsPath, string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(metricsPath);
        ArgumentException.ThrowIfNullOrEmpty(directory);
        Directory.CreateDirectory(directory);
        var (losses, rates, evals) = MetricsLog.Read(metricsPath);
        var written = new List<string>();
        if (losses.Count > 0)
        {
            var terms = losses.Values.SelectMany(d => d.Keys).Distinct(StringComparer.Ordinal).ToArray();
            foreach (var term in terms)
            {
                var points = losses.Where(kv => kv.Value.ContainsKey(term)).Select(kv => ((double)kv.Key, kv.Value[term])).ToArray();
                written.Add(Line(directory, $"loss-{Safe(term)}.png", $"loss term \"{term}\"", "loss", points, smooth: true));
            }

            written.Add(Line(directory, "learning-rate.png", "learning rate", "learning rate", rates.Select(kv => ((double)kv.Key, kv.Value)).ToArray(), smooth: false));
        }

        foreach (var metric in evals.Values.SelectMany(d => d.Keys).Distinct(StringComparer.Ordinal))
        {
            var points = evals.Where(kv => kv.Value.ContainsKey(metric)).Select(kv => ((double)kv.Key, kv.Value[metric])).ToArray();
            written.Add(Line(directory, $"eval-{Safe(metric)}.png", $"evaluation: {metric}", metric, points, smooth: false));
        }

        return written;
    }

    private static string Line(string directory, string file, string title, string yLabel, (double X, double Y)[] points, bool smooth)
    {
        var plot = new ScottPlot.Plot();
        if (FontFile.Value is { } font)
        {
            ScottPlot.Fonts.AddFontFile("MedVlpSans", font);
            plot.Font.Set("MedVlpSans");
        }

        var xs = points.Select(p => p.X).ToArray();
        var ys = points.Select(p => double.IsFinite(p.Y) ? p.Y : double.NaN).ToArray();
        var raw = plot.Add.ScatterLine(xs, ys);
        raw.LineWidth = smooth ? 1 : 2;
        raw.MarkerSize = smooth || xs.Length > 40 ? 0 : 5;
        raw.Color = smooth ? ScottPlot.Colors.SteelBlue.WithAlpha(0.45) : ScottPlot.Colors.DarkBlue;
        raw.LegendText = smooth ? "per step" : yLabel;
        if (smooth && xs.Length >= 4)
        {
            var window = Math.Max(2, xs.Length / 25);
            var mean = new double[ys.Length];
            for (var i = 0; i < ys.Length; i++)
            {
                var from = Math.Max(0, i - window + 1);
                mean[i] = ys.AsSpan(from, i - from + 1).ToArray().Where(double.IsFinite).DefaultIfEmpty(double.NaN).Average();
            }

            var line = plot.Add.ScatterLine(xs, mean);
            line.LineWidth = 3;
            line.Color = ScottPlot.Colors.DarkBlue;
            line.LegendText = string.Create(CultureInfo.InvariantCulture, $"running mean ({window} steps)");
            plot.ShowLegend(ScottPlot.Alignment.UpperRight);
        }

        plot.Title(title);
        plot.XLabel("training step");
        plot.YLabel(yLabel);
        var path = Path.Combine(directory, file);
        var temp = path + ".tmp.png";
        plot.SavePng(temp, 900, 500);
        File.Move(temp, path, overwrite: true);
        return path;
    }

    private static string Safe(string name) => string.Concat(name.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' ? c : '_'));
}
