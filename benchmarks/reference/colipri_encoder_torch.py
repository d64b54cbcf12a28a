#!/usr/bin/python3
"""PyTorch 1.13 reference for `dotnet benchmarks/MedVlp.Benchmarks/bin/Release/net10.0/MedVlp.Benchmarks.dll colipri-encoder
THREADS REPEATS SIZE` (benchmarks/MedVlp.Benchmarks/ColipriEncoderSideBySide.cs): COLIPRI's image encoder at the `full`
width and depth, forward only (inference mode), batch 1, SIZE^3 input.

The modules are those of tests/golden/make_colipri_golden.py (written after timm's EvaAttention / EvaBlock with 3D rotary
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
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def rope_tables(grid, head_dim, theta=10000.0):
    rope_dim = head_dim / 1.5
    num_bands = int(rope_dim) // 4
    bands = 1.0 / (theta ** (torch.arange(0, num_bands, dtype=torch.float32) / num_bands))
    t = [torch.arange(s, dtype=torch.float32) for s in grid]
    g = torch.stack(torch.meshgrid(t, indexing="ij"), dim=-1).unsqueeze(-1)
    pos = g * bands
    n = int(torch.tensor(grid).prod())
    sin = pos.sin().reshape(n, -1).repeat_interleave(2, -1)
    cos = pos.cos().reshape(n, -1).repeat_interleave(2, -1)
    return sin, cos


def rot(x):
    return torch.stack([-x[..., 1::2], x[..., ::2]], -1).reshape(x.shape)


class EvaAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, rope):
        b, n, c = x.shape
        q = self.q_proj(x).reshape(b, n, self.heads, -1).transpose(1, 2)
        k = self.k_proj(x).reshape(b, n, self.heads, -1).transpose(1, 2)
        v = self.v_proj(x).reshape(b, n, self.heads, -1).transpose(1, 2)
        sin, cos = rope
        q = q * cos + rot(q) * sin
        k = k * cos + rot(k) * sin
        q = q * q.shape[-1] ** -0.5
        out = torch.empty_like(q)
        for h in range(self.heads):  # one head at a time: see the module docstring
            out[:, h] = (q[:, h] @ k[:, h].transpose(-2, -1)).softmax(-1) @ v[:, h]
        x = out.transpose(1, 2).reshape(b, n, c)
        return self.proj(self.norm(x))


class SwiGLU(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1_g = nn.Linear(dim, hidden)
        self.fc1_x = nn.Linear(dim, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.norm(F.silu(self.fc1_g(x)) * self.fc1_x(x)))


class EvaBlock(nn.Module):
    def __init__(self, dim, heads, hidden):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = EvaAttention(dim, heads)
        self.gamma_1 = nn.Parameter(torch.full((dim,), 0.1))
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = SwiGLU(dim, hidden)
        self.gamma_2 = nn.Parameter(torch.full((dim,), 0.1))

    def forward(self, x, rope):
        x = x + self.gamma_1 * self.attn(self.norm1(x), rope)
        return x + self.gamma_2 * self.mlp(self.norm2(x))


class ColipriImageEncoder(nn.Module):
    def __init__(self, dim=864, depth=16, heads=12, hidden=2304, patch=8, embed=768, pool_heads=12):
        super().__init__()
        self.heads = heads
        self.patch = nn.Conv3d(1, dim, patch, stride=patch)
        self.blocks = nn.ModuleList([EvaBlock(dim, heads, hidden) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.projector = nn.Conv3d(dim, embed, 1)
        self.pool_heads = pool_heads
        self.latent = nn.Parameter(torch.randn(1, 1, embed) * 0.02)
        self.q = nn.Linear(embed, embed)
        self.kv = nn.Linear(embed, 2 * embed)
        self.pool_proj = nn.Linear(embed, embed)

    def forward(self, x):
        x = self.patch(x)
        grid = list(x.shape[2:])
        x = x.flatten(2).transpose(1, 2)
        rope = rope_tables(grid, x.shape[-1] // self.heads)
        for blk in self.blocks:
            x = blk(x, rope)
        x = self.norm(x)
        b, n, c = x.shape
        x = self.projector(x.transpose(1, 2).reshape(b, c, *grid)).flatten(2).transpose(1, 2)
        e = x.shape[-1]
        q = self.q(self.latent.expand(b, -1, -1)).reshape(b, 1, self.pool_heads, -1).transpose(1, 2)
        kv = self.kv(x).reshape(b, n, 2, self.pool_heads, -1).permute(2, 0, 3, 1, 4)
        a = ((q * q.shape[-1] ** -0.5) @ kv[0].transpose(-2, -1)).softmax(-1)
        pooled = self.pool_proj((a @ kv[1]).transpose(1, 2).reshape(b, e))
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
