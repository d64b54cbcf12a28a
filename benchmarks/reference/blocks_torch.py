#!/usr/bin/python3
"""PyTorch reference for benchmarks/MedVlp.Benchmarks/BlocksBenchmarks.cs: a pre-norm ViT layer (width 384, 6 heads,
MLP 1536, GELU, LayerNorm eps 1e-6) forward + backward of mean(y^2) on 4 x 197 tokens, CPU float32, as PyTorch's own
nn.TransformerEncoderLayer(norm_first=True) -- the same ops as MedVlp's TransformerLayer.

Usage: /usr/bin/python3 benchmarks/reference/blocks_torch.py --threads N
Use the thread count the .NET benchmark prints ("// libtorch threads: N").
"""
import argparse
import statistics
import timeit

import torch
import torch.nn as nn


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--number", type=int, default=10)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(384, 6, 1536, dropout=0.0, activation="gelu", layer_norm_eps=1e-6, batch_first=True, norm_first=True)
    x = torch.randn(4, 197, 384).requires_grad_(True)

    def step():
        layer.zero_grad()
        loss = layer(x).square().mean()
        loss.backward()
        return loss.item()

    for _ in range(5):
        step()
    number = a.number
    times = [t / number * 1e3 for t in timeit.Timer(step).repeat(repeat=a.repeats, number=number)]
    print(f"torch {torch.__version__} threads={torch.get_num_threads()}")
    print(f"TransformerEncoderLayer(384, 6, 1536, norm_first) forward+backward, 4 x 197 tokens: median {statistics.median(times):.2f} ms, min {min(times):.2f} ms")


if __name__ == "__main__":
    main()
