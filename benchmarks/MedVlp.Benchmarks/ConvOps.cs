using System.Globalization;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MedVlp.Benchmarks;

/// <summary>
/// <c>-- conv-ops [threads] [repeats] [2d|3d]</c>: forward + backward (input and weight gradients) of the convolution shapes that
/// dominate ResNet-50, and of the matrix products they become, in process CPU milliseconds per call; the same cases as
/// benchmarks/reference/conv_ops_torch.py, to find where MedVlp's ResNet step loses time against PyTorch 1.13.
/// </summary>
internal static class ConvOps
{
    public static void Run(int threads, int repeats, string? only = null)
    {
        set_num_threads(threads);
        Console.WriteLine($"conv-ops, TorchSharp on libtorch, {threads} thread(s)");
        foreach (var (name, step) in only == "3d" ? Cases3d() : only == "2d" ? Cases() : only == "linear" ? CasesLinear() : Cases().Concat(Cases3d()).Concat(CasesLinear()))
        {
            using var scope = NewDisposeScope();
            var times = CpuTimer.Measure(step, 2, repeats);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name,-44} {times.Cpu,9:F1} ms CPU (min {times.MinCpu:F1})"));
        }
    }

    private static IEnumerable<(string Name, Action Step)> Cases()
    {
        foreach (var (n, c, k, hw, o) in new (long, long, long, long, long)[] { (8, 256, 1, 56, 64), (8, 64, 1, 56, 256), (8, 1024, 1, 14, 256), (8, 64, 3, 56, 64), (8, 256, 3, 14, 256) })
        {
            var x = rand(n, c, hw, hw).requires_grad_();
            var w = (randn(o, c, k, k) * 0.05).requires_grad_();
            var g = randn(n, o, hw, hw);
            var pad = k / 2;
            yield return ($"conv{k}x{k} {n}x{c}x{hw}^2 -> {o} NCHW", () => Conv(x, w, g, pad));
            var xl = x.detach().permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2).requires_grad_();
            var gl = g.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);
            yield return ($"conv{k}x{k} {n}x{c}x{hw}^2 -> {o} channels-last", () => Conv(xl, w, gl, pad));
            if (k == 1)
            {
                // 1x1: the channels-last input viewed as N*H images of 1 x W (a free view), so libtorch's batch >= 16 rule picks oneDNN.
                var xf = x.detach().permute(0, 2, 3, 1).contiguous().view(n * hw, 1, hw, c).permute(0, 3, 1, 2).requires_grad_();
                var gf = g.permute(0, 2, 3, 1).contiguous().view(n * hw, 1, hw, o).permute(0, 3, 1, 2);
                yield return ($"conv1x1 as {n * hw} x 1 x {hw} channels-last (oneDNN)", () => Conv(xf, w, gf, 0));
                yield return ($"conv1x1 dilation 2 NCHW (oneDNN)", () => Conv(x, w, g, 0, 2));
                yield return ($"conv1x1 dilation 2 channels-last (oneDNN)", () => Conv(xl, w, gl, 0, 2));
                var xm = x.detach().permute(0, 2, 3, 1).reshape(-1, c).contiguous().requires_grad_();
                var wm = w.detach().view(o, c).requires_grad_();
                var gm = g.permute(0, 2, 3, 1).reshape(-1, o).contiguous();
                yield return ($"linear {n * hw * hw} x {c} -> {o}", () =>
                {
                    using var s = NewDisposeScope();
                    F.linear(xm, wm).backward([gm]);
                    xm.grad!.zero_();
                    wm.grad!.zero_();
                });
                var a = randn(o, c);
                var b = randn(c, hw * hw);
                yield return ($"mm {o} x {c} x {hw * hw} (x{n})", () =>
                {
                    using var s = NewDisposeScope();
                    for (var i = 0; i < n; i++)
                    {
                        mm(a, b);
                    }
                });
            }
        }
    }

    private static IEnumerable<(string Name, Action Step)> Cases3d()
    {
        foreach (var (n, c, k, s, o) in new (long, long, long, long, long)[] { (2, 256, 1, 16, 64), (2, 64, 1, 16, 256), (2, 64, 3, 16, 64), (2, 1024, 1, 4, 256), (2, 256, 3, 4, 256), (2, 128, 3, 8, 128), (2, 512, 3, 2, 512) })
        {
            var x = rand([n, c, s, s, s]).requires_grad_();
            var w = (randn([o, c, k, k, k]) * 0.05).requires_grad_();
            var g = randn([n, o, s, s, s]);
            var pad = k / 2;
            yield return ($"conv3d {k}^3 {n}x{c}x{s}^3 -> {o} NCDHW", () => Conv3(x, w, g, pad));
            var xl = x.detach().permute(0, 2, 3, 4, 1).contiguous().permute(0, 4, 1, 2, 3).requires_grad_();
            var gl = g.permute(0, 2, 3, 4, 1).contiguous().permute(0, 4, 1, 2, 3);
            yield return ($"conv3d {k}^3 {n}x{c}x{s}^3 -> {o} channels-last", () => Conv3(xl, w, gl, pad));
            if (k == 3)
            {
                yield return ($"conv3d 3^3 {n}x{c}x{s}^3 -> {o} im2col + mm", () => Im2Col3(x, w, g));
            }

            if (k == 1)
            {
                var xf = x.detach().permute(0, 2, 3, 4, 1).contiguous().view(n * s * s, 1, s, c).permute(0, 3, 1, 2).requires_grad_();
                var gf = g.permute(0, 2, 3, 4, 1).contiguous().view(n * s * s, 1, s, o).permute(0, 3, 1, 2);
                var w2 = (randn(o, c, 1, 1) * 0.05).requires_grad_();
                yield return ($"conv3d 1^3 as {n * s * s} x 1 x {s} 2D channels-last", () => Conv(xf, w2, gf, 0));
                yield return ($"conv3d 1^3 dilation 2 NCDHW", () => Conv3(x, w, g, 0, 2));
                yield return ($"conv3d 1^3 dilation 2 channels-last", () => Conv3(xl, w, gl, 0, 2));
            }
        }

        foreach (var (n, c, s) in new (long, long, long)[] { (2, 512, 4), (2, 256, 8), (2, 128, 16) })
        {
            var x = rand([n, c, s, s, s]).requires_grad_();
            var w = (randn([c, c, 3, 3, 3]) * 0.05).requires_grad_();
            var g = randn([n, c, s / 2, s / 2, s / 2]);
            yield return ($"conv3d 3^3 stride 2 {n}x{c}x{s}^3 NCDHW", () =>
            {
                using var sc = NewDisposeScope();
                F.conv3d(x, w, strides: [2, 2, 2], padding: [1, 1, 1]).backward([g]);
                x.grad!.zero_();
                w.grad!.zero_();
            });
            yield return ($"conv3d 3^3 stride 2 {n}x{c}x{s}^3 im2col", () => Im2Col3(x, w, g, 2));
        }

        foreach (var (n, c, s) in new (long, long, long)[] { (2, 64, 32), (2, 256, 16) })
        {
            var x = rand([n, c, s, s, s]).requires_grad_();
            var xl = x.detach().permute(0, 2, 3, 4, 1).contiguous().permute(0, 4, 1, 2, 3).requires_grad_();
            var wt = ones(c).requires_grad_();
            var bs = zeros(c).requires_grad_();
            var rm = zeros(c);
            var rv = ones(c);
            foreach (var (layout, t) in new[] { ("NCDHW", x), ("channels-last", xl) })
            {
                yield return ($"batch_norm+relu {n}x{c}x{s}^3 {layout}", () =>
                {
                    using var sc = NewDisposeScope();
                    F.relu(F.batch_norm(t, rm, rv, wt, bs, training: true)).sum().backward();
                    t.grad!.zero_();
                });
                if (c == 64)
                {
                    yield return ($"max_pool3d {n}x{c}x{s}^3 {layout}", () =>
                    {
                        using var sc = NewDisposeScope();
                        F.max_pool3d(t, [3, 3, 3], [2, 2, 2], [1, 1, 1]).sum().backward();
                        t.grad!.zero_();
                    });
                }
            }
        }
    }

    /// <summary>Max abs difference of output and both gradients: dilation-2 / channels-last 1x1 convolutions against float64 NCHW.</summary>
    public static void Check()
    {
        set_num_threads(1);
        manual_seed(1);
        foreach (var (n, c, hw, o, stride) in new (long, long, long, long, long)[] { (32, 8, 12, 4, 1), (32, 16, 6, 64, 2), (2, 256, 14, 64, 1), (8, 3, 9, 5, 1) })
        {
            var x = randn(n, c, hw, hw);
            var w = randn(o, c, 1, 1) * 0.3;
            var ho = (hw - 1) / stride + 1;
            var g = randn(n, o, ho, ho);
            (Tensor Y, Tensor Dx, Tensor Dw) Run(Tensor xi, Tensor wi, Tensor gi, long dil)
            {
                var xr = xi.detach().requires_grad_();
                var wr = wi.detach().requires_grad_();
                var y = F.conv2d(xr, wr, strides: [stride, stride], dilation: [dil, dil]);
                y.backward([gi]);
                return (y.detach().to(float64), xr.grad!.to(float64), wr.grad!.to(float64));
            }

            var r = Run(x.to(float64), w.to(float64), g.to(float64), 1);
            var cl = (Tensor t) => t.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);
            foreach (var (name, res) in new[] { ("NCHW d1", Run(x, w, g, 1)), ("NCHW d2", Run(x, w, g, 2)), ("CL d2", Run(cl(x), w, cl(g), 2)) })
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{n}x{c}x{hw}^2 -> {o} s{stride} {name}: y {(res.Y - r.Y).abs().max().item<double>():E2} dx {(res.Dx - r.Dx).abs().max().item<double>():E2} dw {(res.Dw - r.Dw).abs().max().item<double>():E2} (|dw| {r.Dw.abs().max().item<double>():E2})"));
            }
        }
    }

    private static IEnumerable<(string Name, Action Step)> CasesLinear()
    {
        foreach (var (b, t, k, o) in new (long, long, long, long)[] { (8, 513, 256, 768), (8, 513, 256, 1024), (8, 513, 1024, 256) })
        {
            var x = randn(b, t, k).requires_grad_();
            var w = (randn(o, k) * 0.05).requires_grad_();
            var g = randn(b, t, o);
            yield return ($"linear {b}x{t} x {k} -> {o}", () =>
            {
                using var s = NewDisposeScope();
                F.linear(x, w).backward([g]);
                x.grad!.zero_();
                w.grad!.zero_();
            });
            yield return ($"linear {b}x{t} x {k} -> {o} as 1x1 conv (oneDNN)", () =>
            {
                using var s = NewDisposeScope();
                // [B, T, K] is channels-last memory of [B, K, 1, T]; dilation 2 sends the 1x1 convolution to oneDNN.
                var y = F.conv2d(x.view(b, 1, t, k).permute(0, 3, 1, 2), w.view(o, k, 1, 1), dilation: [2, 2]);
                y.permute(0, 2, 3, 1).view(b, t, o).backward([g]);
                x.grad!.zero_();
                w.grad!.zero_();
            });
            yield return ($"linear {b}x{t} x {k} -> {o} as 1 x {k} x 1 x {b * t} conv (oneDNN)", () =>
            {
                using var s = NewDisposeScope();
                var y = F.conv2d(x.view(1, 1, b * t, k).permute(0, 3, 1, 2), w.view(o, k, 1, 1), dilation: [2, 2]);
                y.permute(0, 2, 3, 1).view(b, t, o).backward([g]);
                x.grad!.zero_();
                w.grad!.zero_();
            });
        }
    }

    /// <summary>ResNet's route for 3x3x3 convolutions of maps of at most 8 output voxels (<see cref="MedVlp.Modeling.Backbones.ResNet"/>).</summary>
    private static void Im2Col3(Tensor x, Tensor w, Tensor g, long stride = 1)
    {
        using var sc = NewDisposeScope();
        MedVlp.Modeling.Backbones.ResNet.Im2ColConv3d(x, w, stride).backward([g]);
        x.grad!.zero_();
        w.grad!.zero_();
    }

    private static void Conv3(Tensor x, Tensor w, Tensor g, long pad, long dilation = 1)
    {
        using var s = NewDisposeScope();
        F.conv3d(x, w, padding: [pad, pad, pad], dilation: [dilation, dilation, dilation]).backward([g]);
        x.grad!.zero_();
        w.grad!.zero_();
    }

    private static void Conv(Tensor x, Tensor w, Tensor g, long pad, long dilation = 1)
    {
        using var s = NewDisposeScope();
        F.conv2d(x, w, padding: [pad, pad], dilation: [dilation, dilation]).backward([g]);
        x.grad!.zero_();
        w.grad!.zero_();
    }
}
