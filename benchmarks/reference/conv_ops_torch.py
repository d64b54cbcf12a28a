#!/usr/bin/python3
"""PyTorch twin of `dotnet benchmarks/MedVlp.Benchmarks/bin/Release/net10.0/MedVlp.Benchmarks.dll conv-ops THREADS REPEATS`
(benchmarks/MedVlp.Benchmarks/ConvOps.cs): forward + backward (input and weight gradients) of the convolution shapes that
dominate ResNet-50, and the matrix products they become, in process CPU milliseconds per call.

Usage (as resnet_side_by_side.sh runs Python: Debian's OpenBLAS first on LD_LIBRARY_PATH, OPENBLAS_CORETYPE unset):
  /usr/bin/python3 benchmarks/reference/conv_ops_torch.py --threads 1 --repeats 5
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F


def cases():
    for n, c, k, hw, o in [(8, 256, 1, 56, 64), (8, 64, 1, 56, 256), (8, 1024, 1, 14, 256), (8, 64, 3, 56, 64), (8, 256, 3, 14, 256)]:
        x = torch.rand(n, c, hw, hw).requires_grad_()
        w = (torch.randn(o, c, k, k) * 0.05).requires_grad_()
        g = torch.randn(n, o, hw, hw)
        pad = k // 2
        yield f"conv{k}x{k} {n}x{c}x{hw}^2 -> {o} NCHW", lambda x=x, w=w, g=g, pad=pad: conv(x, w, g, pad)
        xl = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
        gl = g.contiguous(memory_format=torch.channels_last)
        yield f"conv{k}x{k} {n}x{c}x{hw}^2 -> {o} channels-last", lambda x=xl, w=w, g=gl, pad=pad: conv(x, w, g, pad)
        if k == 1:
            xf = x.detach().permute(0, 2, 3, 1).contiguous().view(n * hw, 1, hw, c).permute(0, 3, 1, 2).requires_grad_()
            gf = g.permute(0, 2, 3, 1).contiguous().view(n * hw, 1, hw, o).permute(0, 3, 1, 2)
            yield f"conv1x1 as {n * hw} x 1 x {hw} channels-last (oneDNN)", lambda x=xf, w=w, g=gf: conv(x, w, g, 0)
            yield "conv1x1 dilation 2 NCHW (oneDNN)", lambda x=x, w=w, g=g: conv(x, w, g, 0, 2)
            yield "conv1x1 dilation 2 channels-last (oneDNN)", lambda x=xl, w=w, g=gl: conv(x, w, g, 0, 2)
            xm = x.detach().permute(0, 2, 3, 1).reshape(-1, c).contiguous().requires_grad_()
            wm = w.detach().view(o, c).requires_grad_()
            gm = g.permute(0, 2, 3, 1).reshape(-1, o).contiguous()

            def lin(xm=xm, wm=wm, gm=gm):
                F.linear(xm, wm).backward(gm)
                xm.grad.zero_()
                wm.grad.zero_()
            yield f"linear {n * hw * hw} x {c} -> {o}", lin
            a, b = torch.randn(o, c), torch.randn(c, hw * hw)

            def mms(a=a, b=b, n=n):
                for _ in range(n):
                    torch.mm(a, b)
            yield f"mm {o} x {c} x {hw * hw} (x{n})", mms


def cases3d():
    for n, c, k, s, o in [(2, 256, 1, 16, 64), (2, 64, 1, 16, 256), (2, 64, 3, 16, 64), (2, 1024, 1, 4, 256), (2, 256, 3, 4, 256), (2, 128, 3, 8, 128), (2, 512, 3, 2, 512)]:
        x = torch.rand(n, c, s, s, s).requires_grad_()
        w = (torch.randn(o, c, k, k, k) * 0.05).requires_grad_()
        g = torch.randn(n, o, s, s, s)
        pad = k // 2
        yield f"conv3d {k}^3 {n}x{c}x{s}^3 -> {o} NCDHW", lambda x=x, w=w, g=g, pad=pad: conv3(x, w, g, pad)
        xl = x.detach().contiguous(memory_format=torch.channels_last_3d).requires_grad_()
        gl = g.contiguous(memory_format=torch.channels_last_3d)
        yield f"conv3d {k}^3 {n}x{c}x{s}^3 -> {o} channels-last", lambda x=xl, w=w, g=gl, pad=pad: conv3(x, w, g, pad)
        if k == 1:
            xf = x.detach().permute(0, 2, 3, 4, 1).contiguous().view(n * s * s, 1, s, c).permute(0, 3, 1, 2).requires_grad_()
            gf = g.permute(0, 2, 3, 4, 1).contiguous().view(n * s * s, 1, s, o).permute(0, 3, 1, 2)
            w2 = (torch.randn(o, c, 1, 1) * 0.05).requires_grad_()
            yield f"conv3d 1^3 as {n * s * s} x 1 x {s} 2D channels-last", lambda x=xf, w=w2, g=gf: conv(x, w, g, 0)
            yield "conv3d 1^3 dilation 2 NCDHW", lambda x=x, w=w, g=g: conv3(x, w, g, 0, 2)
            yield "conv3d 1^3 dilation 2 channels-last", lambda x=xl, w=w, g=gl: conv3(x, w, g, 0, 2)
    for n, c, s in [(2, 512, 4), (2, 256, 8), (2, 128, 16)]:
        x = torch.rand(n, c, s, s, s).requires_grad_()
        w = (torch.randn(c, c, 3, 3, 3) * 0.05).requires_grad_()
        g = torch.randn(n, c, s // 2, s // 2, s // 2)

        def strided(x=x, w=w, g=g):
            F.conv3d(x, w, stride=2, padding=1).backward(g)
            x.grad.zero_()
            w.grad.zero_()
        yield f"conv3d 3^3 stride 2 {n}x{c}x{s}^3 NCDHW", strided
    for n, c, s in [(2, 64, 32), (2, 256, 16)]:
        x = torch.rand(n, c, s, s, s).requires_grad_()
        xl = x.detach().contiguous(memory_format=torch.channels_last_3d).requires_grad_()
        wt, bs = torch.ones(c).requires_grad_(), torch.zeros(c).requires_grad_()
        rm, rv = torch.zeros(c), torch.ones(c)
        for layout, t in [("NCDHW", x), ("channels-last", xl)]:
            def bn(t=t):
                F.relu(F.batch_norm(t, rm, rv, wt, bs, training=True)).sum().backward()
                t.grad.zero_()
            yield f"batch_norm+relu {n}x{c}x{s}^3 {layout}", bn
            if c == 64:
                def mp(t=t):
                    F.max_pool3d(t, 3, 2, 1).sum().backward()
                    t.grad.zero_()
                yield f"max_pool3d {n}x{c}x{s}^3 {layout}", mp


def cases_linear():
    for b, t, k, o in [(8, 513, 256, 768), (8, 513, 256, 1024), (8, 513, 1024, 256)]:
        x = torch.randn(b, t, k).requires_grad_()
        w = (torch.randn(o, k) * 0.05).requires_grad_()
        g = torch.randn(b, t, o)

        def lin(x=x, w=w, g=g):
            F.linear(x, w).backward(g)
            x.grad.zero_()
            w.grad.zero_()
        yield f"linear {b}x{t} x {k} -> {o}", lin


def conv3(x, w, g, pad, dilation=1):
    F.conv3d(x, w, padding=pad, dilation=dilation).backward(g)
    x.grad.zero_()
    w.grad.zero_()


def conv(x, w, g, pad, dilation=1):
    F.conv2d(x, w, padding=pad, dilation=dilation).backward(g)
    x.grad.zero_()
    w.grad.zero_()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--case", choices=["2d", "3d", "linear"], help="run one group only")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    print(f"conv-ops, PyTorch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    groups = {"2d": cases, "3d": cases3d, "linear": cases_linear}
    for name, step in (step for key, make in groups.items() if a.case in (None, key) for step in make()):
        step()
        step()
        cpu = []
        for _ in range(a.repeats):
            c0 = time.process_time()
            step()
            cpu.append((time.process_time() - c0) * 1000)
        print(f"{name:<44} {statistics.median(cpu):9.1f} ms CPU (min {min(cpu):.1f})")


if __name__ == "__main__":
    main()
