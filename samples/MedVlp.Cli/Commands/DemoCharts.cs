using System.Globalization;
using MedVlp.Inference;
using MedVlp.Synthetic;
using MedVlp.Training;
using MedVlp.Volumes;
using SkiaSharp;

namespace MedVlp.Cli.Commands;

/// <summary>What the loss curve shows: the loss and learning rate of every step.</summary>
internal sealed record LossHistory(IReadOnlyList<double> Losses, IReadOnlyList<double> LearningRates, int StepsPerEpoch, int BatchSize);

/// <summary>The demo's pictures: the training curve (ScottPlot) and a montage of held-out volumes (SkiaSharp).</summary>
internal static class DemoCharts
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

    /// <summary>Loss per step (faint) and its per-epoch mean (bold), with the learning rate schedule on a second axis.</summary>
    public static void WriteLossCurve(string path, LossHistory history)
    {
        var plot = new ScottPlot.Plot();
        UseFont(plot);
        var steps = Enumerable.Range(1, history.Losses.Count).Select(s => (double)s).ToArray();
        var raw = plot.Add.ScatterLine(steps, history.Losses.ToArray());
        raw.LegendText = "loss per step";
        raw.LineWidth = 1;
        raw.Color = ScottPlot.Colors.SteelBlue.WithAlpha(0.45);

        var perEpoch = history.StepsPerEpoch;
        var epochX = new List<double>();
        var epochY = new List<double>();
        for (var start = 0; start + perEpoch <= history.Losses.Count; start += perEpoch)
        {
            epochX.Add(start + perEpoch);
            epochY.Add(history.Losses.Skip(start).Take(perEpoch).Average());
        }

        var mean = plot.Add.ScatterLine(epochX.ToArray(), epochY.ToArray());
        mean.LegendText = "epoch mean";
        mean.LineWidth = 3;
        mean.MarkerSize = 6;
        mean.Color = ScottPlot.Colors.DarkBlue;

        var chance = plot.Add.HorizontalLine(Math.Log(history.BatchSize));
        chance.LegendText = string.Create(CultureInfo.InvariantCulture, $"chance level, ln({history.BatchSize})");
        chance.LineWidth = 1.5f;
        chance.LinePattern = ScottPlot.LinePattern.Dotted;
        chance.Color = ScottPlot.Colors.Gray;

        // Same-class pairs in a batch cannot be told apart from the image alone, so the loss floors near ln(batch / classes).
        var floor = plot.Add.HorizontalLine(Math.Log(history.BatchSize / 3.0));
        floor.LegendText = string.Create(CultureInfo.InvariantCulture, $"class-only floor, about ln({history.BatchSize}/3)");
        floor.LineWidth = 1.5f;
        floor.LinePattern = ScottPlot.LinePattern.DenselyDashed;
        floor.Color = ScottPlot.Colors.SeaGreen;

        var lr = plot.Add.ScatterLine(steps, history.LearningRates.ToArray());
        lr.LegendText = "learning rate (right axis)";
        lr.LineWidth = 1.5f;
        lr.LinePattern = ScottPlot.LinePattern.Dashed;
        lr.Color = ScottPlot.Colors.OrangeRed;
        lr.Axes.YAxis = plot.Axes.Right;

        plot.Title(string.Create(CultureInfo.InvariantCulture,
            $"CLIP pre-training on synthetic brain MRI + reports ({history.Losses.Count} steps, {history.Losses.Count / perEpoch} epochs)"));
        plot.XLabel("training step");
        plot.YLabel("symmetric InfoNCE loss");
        plot.Axes.Right.Label.Text = "learning rate";
        var lowest = Math.Min(history.Losses.Min(), Math.Log(history.BatchSize / 3.0));
        plot.Axes.SetLimitsY(Math.Max(0, Math.Floor((lowest - 0.3) * 2) / 2), Math.Max(lowest + 0.5, history.Losses.Max() + 0.1), plot.Axes.Left);
        plot.Axes.SetLimitsY(0, history.LearningRates.Max() * 1.1, plot.Axes.Right);
        plot.ShowLegend(ScottPlot.Alignment.UpperRight);
        plot.SavePng(path, 1000, 560);
    }

    /// <summary>Axial and coronal mid-slices of four held-out volumes per class, with age, MMSE and the zero-shot prediction.</summary>
    public static void WriteMontage(string path, IReadOnlyList<SyntheticBrainCase> cases, IReadOnlyList<ZeroShotPrediction> predictions)
    {
        const int PerClass = 4;
        const int Zoom = 3;
        const int LabelWidth = 190;
        const int Gap = 10;
        const int Caption = 26;
        const int TitleHeight = 64;
        var shape = cases[0].Volume.Shape;
        var axialW = shape.X * Zoom;
        var axialH = shape.Y * Zoom;
        var coronalH = shape.Z * Zoom;
        var tileW = (2 * axialW) + 4;
        var rowH = Math.Max(axialH, coronalH) + Caption + Gap;
        var width = LabelWidth + (PerClass * (tileW + Gap)) + Gap;
        var height = TitleHeight + (3 * rowH) + Gap;

        using var surface = SKSurface.Create(new SKImageInfo(width, height));
        var canvas = surface.Canvas;
        canvas.Clear(new SKColor(18, 18, 22));
        using var typeface = FontFile.Value is { } f ? SKTypeface.FromFile(f) : SKTypeface.Default;
        using var titleFont = new SKFont(typeface, 22);
        using var labelFont = new SKFont(typeface, 19);
        using var smallFont = new SKFont(typeface, 14);
        using var white = new SKPaint { Color = SKColors.White, IsAntialias = true };
        using var grey = new SKPaint { Color = new SKColor(190, 190, 200), IsAntialias = true };
        using var good = new SKPaint { Color = new SKColor(120, 220, 120), IsAntialias = true };
        using var bad = new SKPaint { Color = new SKColor(255, 120, 110), IsAntialias = true };
        canvas.DrawText("Held-out synthetic brains: axial and coronal slices through the ventricles", Gap, 30, SKTextAlign.Left, titleFont, white);
        canvas.DrawText("Ventricles enlarge and the cortex thins from CN to MCI to AD; captions give age, MMSE and the zero-shot prediction (probability).", Gap, 54, SKTextAlign.Left, smallFont, grey);

        for (var d = 0; d < 3; d++)
        {
            var diagnosis = (CognitiveDiagnosis)d;
            var top = TitleHeight + (d * rowH);
            canvas.DrawText(diagnosis.Code(), Gap, top + 40, SKTextAlign.Left, titleFont, white);
            string[] names = diagnosis switch
            {
                CognitiveDiagnosis.CognitivelyNormal => ["Not demented"],
                CognitiveDiagnosis.MildCognitiveImpairment => ["Mild cognitive", "impairment"],
                _ => ["Dementia"],
            };
            for (var line = 0; line < names.Length; line++)
            {
                canvas.DrawText(names[line], Gap, top + 66 + (line * 22), SKTextAlign.Left, labelFont, grey);
            }
            var picked = Enumerable.Range(0, cases.Count).Where(n => cases[n].Diagnosis == diagnosis).Take(PerClass).ToArray();
            for (var s = 0; s < picked.Length; s++)
            {
                var c = cases[picked[s]];
                var left = LabelWidth + (s * (tileW + Gap));
                var (lo, hi) = Window(c.Volume);
                using (var axial = Slice(c.Volume, axis: 2, index: (int)(shape.Z * 0.58), lo, hi))
                {
                    Draw(canvas, axial, left, top, axialW, axialH);
                }

                using (var coronal = Slice(c.Volume, axis: 1, index: shape.Y / 2, lo, hi))
                {
                    Draw(canvas, coronal, left + axialW + 4, top + ((axialH - coronalH) / 2), axialW, coronalH);
                }

                var p = predictions[picked[s]];
                var caption = string.Create(CultureInfo.InvariantCulture,
                    $"{c.Subject.Age} y {(c.Subject.IsFemale ? "F" : "M")}, MMSE {c.Subject.Mmse}  ->  {p.Label} ({p.Probabilities[p.LabelIndex]:F2})");
                canvas.DrawText(caption, left, top + Math.Max(axialH, coronalH) + 19, SKTextAlign.Left, smallFont, p.LabelIndex == d ? good : bad);
            }
        }

        using var image = surface.Snapshot();
        using var png = image.Encode(SKEncodedImageFormat.Png, 100);
        using var file = File.Create(path);
        png.SaveTo(file);
    }

    private static void UseFont(ScottPlot.Plot plot)
    {
        if (FontFile.Value is { } file)
        {
            ScottPlot.Fonts.AddFontFile("MedVlpSans", file);
            plot.Font.Set("MedVlpSans");
        }
    }

    private static (float Lo, float Hi) Window(Volume volume)
    {
        var values = volume.GetFrame(0).ToArray();
        Array.Sort(values);
        return (values[(int)(values.Length * 0.01)], values[(int)(values.Length * 0.999)]);
    }

    /// <summary>A greyscale bitmap of one slice: axis 2 = axial (i right, j up), axis 1 = coronal (i right, k up).</summary>
    private static SKBitmap Slice(Volume volume, int axis, int index, float lo, float hi)
    {
        var shape = volume.Shape;
        var w = shape.X;
        var h = axis == 2 ? shape.Y : shape.Z;
        var bitmap = new SKBitmap(new SKImageInfo(w, h, SKColorType.Gray8, SKAlphaType.Opaque));
        var pixels = new byte[w * h];
        var scale = 255f / Math.Max(hi - lo, 1e-6f);
        for (var row = 0; row < h; row++)
        {
            var v = h - 1 - row; // superior / anterior at the top
            for (var i = 0; i < w; i++)
            {
                var value = axis == 2 ? volume[i, v, index] : volume[i, index, v];
                pixels[(row * w) + i] = (byte)Math.Clamp((value - lo) * scale, 0, 255);
            }
        }

        System.Runtime.InteropServices.Marshal.Copy(pixels, 0, bitmap.GetPixels(), pixels.Length);
        return bitmap;
    }

    private static void Draw(SKCanvas canvas, SKBitmap bitmap, int x, int y, int w, int h)
    {
        using var image = SKImage.FromBitmap(bitmap);
        canvas.DrawImage(image, new SKRect(x, y, x + w, y + h), new SKSamplingOptions(SKFilterMode.Linear, SKMipmapMode.None));
    }
}
