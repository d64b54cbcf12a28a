#!/usr/bin/python3
"""PyTorch 1.13 reference for `dotnet benchmarks/MedVlp.Benchmarks/bin/Release/net10.0/MedVlp.Benchmarks.dll colipri-encoder
THREADS REPEATS SIZE` (benchmarks/MedVlp.Benchmarks/ColipriEncoderSideBySide.cs): COLIPRI's image encoder at the `full`
width and depth, forward only (inference mode), batch 1, SIZE^3 input.

The modules are imported from tests/golden/colipri_reference.py, the golden script's own (written after timm's EvaAttention / EvaBlock with 3D rotary
embedding, dynamic_network_architectures' Primus and the model card's projector + attention pooling), at the sizes of
MedVlp's `ColipriConfig.Full()`: Conv3d patch embedding 1 -> 864, kernel = stride = 8 (192^3 -> 24^3 = 13,824 tokens),
16 EVA blocks (pre-norm LayerNorm, q/k/v projections, 3D RoPE on q and k, attention-output LayerNorm, SwiGLU 864 -> 2304
with its inner LayerNorm, LayerScale), final LayerNorm, Conv3d 1x1 projector 864 -> 768, attention pooling (learned
query, 12 heads) and L2 normalisation: `encode_image(x, pool=True, project=True, normalize=True)`.

One difference from the golden modules, for memory only: attention runs one head at a time (softmax(q_h k_h^T / sqrt(d))
v_h, the same arithmetic). All 12 heads at once, as timm's non-fused path does, would hold two 12 x 13,824^2 float32
score tensors (9.2 GB each) on this shared 24 GB machine; PyTorch 1.13 has no fused CPU attention to fall back on
(`F._scaled_dot_product_attention` there is the same math path).

Usage: /usr/bin/python3 benchmarks/reference/colipri_encoder_torch.py --threads 1 --repeats 1 --size 192
"""
import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "golden"))
from colipri_reference import AttentionPool, EvaAttention, EvaBlock, rope_tables  # noqa: E402 (the golden script's modules)


class PerHeadEvaAttention(EvaAttention):
    """The golden EvaAttention, its softmax attention computed one head at a time (see the module docstring)."""

    def attend(self, q, k, v):
        q = q * q.shape[-1] ** -0.5
        out = torch.empty_like(q)
        for h in range(self.heads):
            out[:, h] = (q[:, h] @ k[:, h].transpose(-2, -1)).softmax(-1) @ v[:, h]
        return out


class ColipriImageEncoder(nn.Module):
    def __init__(self, dim=864, depth=16, heads=12, hidden=2304, patch=8, embed=768, pool_heads=12):
        super().__init__()
        self.heads = heads
        self.patch = nn.Conv3d(1, dim, patch, stride=patch)
        self.blocks = nn.ModuleList([EvaBlock(dim, heads, hidden, attention=PerHeadEvaAttention) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.projector = nn.Conv3d(dim, embed, 1)
        self.pooler = AttentionPool(embed, pool_heads)

    def forward(self, x):
        x = self.patch(x)
        grid = list(x.shape[2:])
        x = x.flatten(2).transpose(1, 2)
        rope = rope_tables(grid, x.shape[-1] // self.heads, dtype=torch.float32)
        for blk in self.blocks:
            x = blk(x, rope)
        x = self.norm(x)
        b, n, c = x.shape
        x = self.projector(x.transpose(1, 2).reshape(b, c, *grid)).flatten(2).transpose(1, 2)
        pooled = self.pooler(x).squeeze(1)
        return F.normalize(pooled, dim=-1)


def rss_mib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--size", type=int, default=192)
    p.add_argument("--warmup-size", type=int, default=96)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    try:
        import threadpoolctl
        blas = [f"{i['internal_api']} {i.get('version')} {i.get('architecture')}" for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    except ImportError:
        blas = ["threadpoolctl not installed"]
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} thread(s), BLAS: {', '.join(blas)}")
    torch.manual_seed(0)
    model = ColipriImageEncoder().eval()
    params = sum(q.numel() for q in model.parameters())
    with torch.inference_mode():
        model(torch.rand(1, 1, a.warmup_size, a.warmup_size, a.warmup_size))  # warm-up (kernels, allocator) on a smaller crop
        x = torch.rand(1, 1, a.size, a.size, a.size)
        resident = rss_mib("VmRSS")
        wall, cpu = [], []
        for _ in range(a.repeats):
            c0, t0 = time.process_time(), time.perf_counter()
            y = model(x)
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    peak = rss_mib("VmHWM")
    print(f"colipri encoder full: input [1, 1, {a.size}, {a.size}, {a.size}], {(a.size // 8) ** 3} tokens, {params:,} parameters, output {list(y.shape)}: "
          f"{statistics.median(wall):.1f} s wall (best {min(wall):.1f}), {statistics.median(cpu):.1f} CPU s per forward; "
          f"RSS before the forward {resident:.0f} MiB, peak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main()
