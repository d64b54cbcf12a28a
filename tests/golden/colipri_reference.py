"""COLIPRI's image-side reference modules, shared by tests/golden/make_colipri_golden.py (golden values, float64) and
benchmarks/reference/colipri_encoder_torch.py (the full-size encoder side by side with MedVlp).

Written after the released code they follow (read, not copied): timm `EvaAttention` (qkv_fused=False) / `EvaBlock`
(SwiGLU, LayerScale), timm `build_rotary_pos_embed(in_pixels=False)` + `apply_rot_embed_cat` with Primus'
`rope_dim = head_dim / 1.5` over a 3D token grid, dynamic_network_architectures `Primus`, and the model card's
1-query attention pooling (timm AttentionPoolLatent without its norm / MLP). Modules take the default dtype.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def rope_tables(grid, head_dim, theta=10000.0, dtype=torch.float64):
    rope_dim = head_dim / 1.5
    num_bands = int(rope_dim) // 4
    bands = 1.0 / (theta ** (torch.arange(0, num_bands, dtype=dtype) / num_bands))
    t = [torch.arange(s, dtype=dtype) for s in grid]
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
        if rope is not None:
            sin, cos = rope
            q = q * cos + rot(q) * sin
            k = k * cos + rot(k) * sin
        x = self.attend(q, k, v).transpose(1, 2).reshape(b, n, c)
        return self.proj(self.norm(x))

    def attend(self, q, k, v):
        a = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
        return a.softmax(-1) @ v


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
    def __init__(self, dim, heads, hidden, attention=None):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = (attention or EvaAttention)(dim, heads)
        self.gamma_1 = nn.Parameter(torch.full((dim,), 0.1))
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = SwiGLU(dim, hidden)
        self.gamma_2 = nn.Parameter(torch.full((dim,), 0.1))

    def forward(self, x, rope=None):
        x = x + self.gamma_1 * self.attn(self.norm1(x), rope)
        return x + self.gamma_2 * self.mlp(self.norm2(x))


class Eva(nn.Module):
    def __init__(self, dim, depth, heads, hidden):
        super().__init__()
        self.blocks = nn.ModuleList([EvaBlock(dim, heads, hidden) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)


class PatchEmbed(nn.Module):
    def __init__(self, cin, dim, p):
        super().__init__()
        self.proj = nn.Conv3d(cin, dim, p, stride=p)


class Primus(nn.Module):
    def __init__(self, cin, dim, p, depth, heads, hidden, stem=(), stem_bn=False):
        super().__init__()
        self.heads = heads
        # MedVlp's optional convolutional stem (not in Primus): 3^3 convs of stride 2 + exact GELU, then patches of
        # p / 2^stages on the stem's output (Xiao et al. 2021, "Early convolutions help transformers see better");
        # stem_bn puts a BatchNorm3d between each convolution and its GELU (MedVlp's tiny size).
        if stem:
            layers, c = [], cin
            for out in stem:
                layers += [nn.Conv3d(c, out, 3, stride=2, padding=1)] + ([nn.BatchNorm3d(out)] if stem_bn else []) + [nn.GELU()]
                c = out
            self.stem = nn.Sequential(*layers)
            cin, p = c, p >> len(stem)
        else:
            self.stem = None
        self.down_projection = PatchEmbed(cin, dim, p)
        self.eva = Eva(dim, depth, heads, hidden)
        self.mask_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)

    def forward(self, x, mask=None):
        if self.stem is not None:
            x = self.stem(x)
        x = self.down_projection.proj(x)
        grid = x.shape[2:]
        x = x.flatten(2).transpose(1, 2)  # b (w h d) c, d fastest
        if mask is not None:
            x = torch.where(mask.unsqueeze(-1), self.mask_token.expand_as(x), x)
        rope = rope_tables(list(grid), x.shape[-1] // self.heads)
        for blk in self.eva.blocks:
            x = blk(x, rope)
        return self.eva.norm(x), grid


class AttentionPool(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.latent = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        q = self.q(self.latent.expand(b, -1, -1)).reshape(b, 1, self.heads, -1).transpose(1, 2)
        kv = self.kv(x).reshape(b, n, 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        a = ((q * q.shape[-1] ** -0.5) @ kv[0].transpose(-2, -1)).softmax(-1)
        return self.proj((a @ kv[1]).transpose(1, 2).reshape(b, 1, c))
