using System.Diagnostics;
using System.Globalization;
using MedVlp.Architectures.Colipri;
using MedVlp.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Benchmarks;

/// <summary>
/// <c>-- colipri-encoder [threads] [repeats] [size] [warmup-size]</c>: COLIPRI's image encoder at the <c>full</c> width and
/// depth (<see cref="ColipriConfig.Full"/>: Primus-M 864 x 16, patch 8, projector to 768, 12-head attention pooling),
/// <see cref="ColipriModel.EncodeImage"/> on one SIZE^3 volume in inference mode, timed as
/// benchmarks/reference/colipri_encoder_torch.py times the PyTorch 1.13 module: one untimed forward on a WARMUP^3 crop,
/// then REPEATS timed forwards (wall and process CPU seconds), with the resident set before the forward and its peak.
/// The text tower and the report decoder are built at the <c>tiny</c> sizes: they take no part in encoding an image, and
/// at the full sizes they would only add about 0.8 GB of untouched weights to the resident set.
/// </summary>
internal static class ColipriEncoderSideBySide
{
    public static void Run(int threads, int repeats, int size, int warmupSize)
    {
        set_num_threads(threads);
        Console.WriteLine($"MedVlp COLIPRI encoder (full), TorchSharp on libtorch, {threads} thread(s), .NET {Environment.Version}");
        var tiny = ColipriConfig.Tiny();
        var config = ColipriConfig.Full() with
        {
            Text = tiny.Text,
            TextPooling = tiny.TextPooling,
            MaxTextTokens = tiny.MaxTextTokens,
            DecoderLayers = tiny.DecoderLayers,
            DecoderWidth = tiny.DecoderWidth,
            DecoderHeads = tiny.DecoderHeads,
        };
        manual_seed(0);
        using var model = new ColipriModel(config);
        model.eval();
        var parameters = model.Backbone.parameters().Sum(p => p.numel());
        using var process = Process.GetCurrentProcess();
        using (inference_mode())
        {
            using (var scope = NewDisposeScope())
            {
                model.EncodeImage(rand([1, 1, warmupSize, warmupSize, warmupSize]));
            }

            using var x = rand([1, 1, size, size, size]);
            process.Refresh();
            var resident = process.WorkingSet64 / 1048576.0;
            var wall = new List<double>();
            var cpu = new List<double>();
            long[] shape = [];
            for (var n = 0; n < repeats; n++)
            {
                using var scope = NewDisposeScope();
                process.Refresh();
                var cpu0 = process.TotalProcessorTime;
                var clock = Stopwatch.StartNew();
                var y = model.EncodeImage(x);
                wall.Add(clock.Elapsed.TotalSeconds);
                process.Refresh();
                cpu.Add((process.TotalProcessorTime - cpu0).TotalSeconds);
                shape = y.shape;
            }

            wall.Sort();
            cpu.Sort();
            process.Refresh();
            var tokens = (long)Math.Pow(size / config.Encoder.PatchSize, 3);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"colipri encoder full: input [1, 1, {size}, {size}, {size}], {tokens} tokens, {parameters:N0} backbone parameters, output [{string.Join(", ", shape)}]: " +
                $"{wall[wall.Count / 2]:F1} s wall (best {wall[0]:F1}), {cpu[cpu.Count / 2]:F1} CPU s per forward; " +
                $"RSS before the forward {resident:F0} MiB, peak RSS {process.PeakWorkingSet64 / 1048576.0:F0} MiB"));
        }
    }
}
