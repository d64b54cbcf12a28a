#!/usr/bin/python3
"""PyTorch reference for benchmarks/MedVlp.Benchmarks/ClipLossBenchmarks.cs: open_clip-style ClipLoss
forward + backward on CPU for a B x D float32 batch, the logit scale a learnable log-parameter exponentiated per step.

Usage: /usr/bin/python3 benchmarks/reference/clip_loss_torch.py --threads N [--batch 256 --dim 512]
Use the thread count the .NET benchmark prints ("// libtorch threads: N").
"""
import argparse
import math
import statistics
import timeit

import torch
import torch.nn.functional as F


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--repeats", type=int, default=15)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    image = F.normalize(torch.randn(a.batch, a.dim), dim=-1).requires_grad_(True)
    text = F.normalize(torch.randn(a.batch, a.dim), dim=-1).requires_grad_(True)
    log_scale = torch.tensor(math.log(1 / 0.07)).requires_grad_(True)
    labels = torch.arange(a.batch)

    def step():
        for t in (image, text, log_scale):
            if t.grad is not None:
                t.grad.zero_()
        scale = log_scale.exp()
        logits_per_image = scale * image @ text.T
        logits_per_text = logits_per_image.T
        loss = (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels)) / 2
        loss.backward()
        return loss.item()

    for _ in range(20):
        step()
    timer = timeit.Timer(step)
    number = 50
    times = [t / number * 1e6 for t in timer.repeat(repeat=a.repeats, number=number)]
    print(f"torch {torch.__version__} threads={torch.get_num_threads()} batch={a.batch} dim={a.dim}")
    print(f"ClipLoss forward+backward: median {statistics.median(times):.1f} us, min {min(times):.1f} us (per step, {a.repeats} x {number} steps)")


if __name__ == "__main__":
    main()
