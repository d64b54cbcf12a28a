"""Golden values for MedVlp's COLIPRI parts (PrimusEncoder, EvaBlock, ColipriModel, ReportDecoder, the COLIPRI losses).

PyTorch reference modules written after the released code they follow (read, not copied):
  * timm `EvaAttention` (qkv_fused=False: q_proj with bias, k_proj without, v_proj with bias; `norm` = scale_attn_inner),
    timm `EvaBlock` (norm1, gamma_1, norm2, SwiGLU mlp fc1_g / fc1_x / norm / fc2, gamma_2; torch LayerNorm eps 1e-5);
  * timm `build_rotary_pos_embed(in_pixels=False)` + `apply_rot_embed_cat` (interleaved pairs, `rot`), with Primus'
    `rope_dim = head_dim / 1.5` over a 3D token grid;
  * dynamic_network_architectures `Primus`: Conv3d `down_projection.proj`, rearrange "b c w h d -> b (w h d) c",
    `eva.blocks`, `eva.norm`, `mask_token` replacing masked tokens;
  * COLIPRI's model card: Conv3d `projector` to the shared width, 1-query attention pooling (timm AttentionPoolLatent
    without its norm / MLP: q, kv, proj), BERT text encoder with [CLS] + projection;
  * the report decoder: Hugging Face BertLayer with cross-attention, causal + padding self-attention mask, lm_head;
  * the losses from their formulas (MedVlp.Losses docs).
Run: /usr/bin/python3 tests/golden/make_colipri_golden.py  (needs python3-torch only)
Writes data/colipri_golden.safetensors: for each case NAME, NAME/param/<state-dict key>, NAME/input/<name>,
NAME/output, NAME/probe (output gradient weights: loss = sum(output * probe)), NAME/grad/<key>, NAME/grad_input/<name>.
"""
import json
import math
import os
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(20261202)
torch.set_default_dtype(torch.float64)
tensors = {}

from colipri_reference import AttentionPool, EvaBlock, Primus, rope_tables  # noqa: E402 (shared with the benchmark)


class BertSelfAttention(nn.Module):
    def __init__(self, dim, heads, kv_dim=None):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(kv_dim or dim, dim)
        self.value = nn.Linear(kv_dim or dim, dim)

    def forward(self, x, kv, mask):
        b, t, c = x.shape
        s = kv.shape[1]
        q = self.query(x).reshape(b, t, self.heads, -1).transpose(1, 2)
        k = self.key(kv).reshape(b, s, self.heads, -1).transpose(1, 2)
        v = self.value(kv).reshape(b, s, self.heads, -1).transpose(1, 2)
        a = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        if mask is not None:
            a = a.masked_fill(~mask, torch.finfo(a.dtype).min)
        return (a.softmax(-1) @ v).transpose(1, 2).reshape(b, t, c)


class BertSelfOutput(nn.Module):
    def __init__(self, dim, inner):
        super().__init__()
        self.dense = nn.Linear(inner, dim)
        self.LayerNorm = nn.LayerNorm(dim, eps=1e-12)

    def forward(self, h, residual):
        return self.LayerNorm(self.dense(h) + residual)


class BertAttention(nn.Module):
    def __init__(self, dim, heads, kv_dim=None):
        super().__init__()
        setattr(self, "self", BertSelfAttention(dim, heads, kv_dim))
        self.output = BertSelfOutput(dim, dim)

    def forward(self, x, kv, mask):
        return self.output(getattr(self, "self")(x, kv, mask), x)


class Dense(nn.Module):
    def __init__(self, i, o):
        super().__init__()
        self.dense = nn.Linear(i, o)


class BertLayer(nn.Module):
    def __init__(self, dim, heads, ffn, cross_dim):
        super().__init__()
        self.attention = BertAttention(dim, heads)
        self.crossattention = BertAttention(dim, heads, cross_dim)
        self.intermediate = Dense(dim, ffn)
        self.output = BertSelfOutput(dim, ffn)

    def forward(self, x, mask, enc):
        x = self.attention(x, x, mask)
        x = self.crossattention(x, enc, None)
        return self.output(F.gelu(self.intermediate.dense(x)), x)


class BertEmbeddings(nn.Module):
    def __init__(self, vocab, dim, max_pos):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, dim)
        self.position_embeddings = nn.Embedding(max_pos, dim)
        self.token_type_embeddings = nn.Embedding(2, dim)
        self.LayerNorm = nn.LayerNorm(dim, eps=1e-12)

    def forward(self, ids):
        pos = torch.arange(ids.shape[1])
        return self.LayerNorm(self.word_embeddings(ids) + self.position_embeddings(pos) + self.token_type_embeddings(torch.zeros_like(ids)))


class ReportDecoder(nn.Module):
    def __init__(self, vocab, dim, heads, layers, max_pos, cross_dim):
        super().__init__()
        self.embeddings = BertEmbeddings(vocab, dim, max_pos)
        self.layer = nn.ModuleList([BertLayer(dim, heads, 4 * dim, cross_dim) for _ in range(layers)])
        self.lm_head = nn.Linear(dim, vocab)

    def forward(self, ids, attn, enc):
        t = ids.shape[1]
        mask = torch.tril(torch.ones(t, t, dtype=torch.bool))[None, None] & attn.bool()[:, None, None, :]
        h = self.embeddings(ids)
        for layer in self.layer:
            h = layer(h, mask, enc)
        return self.lm_head(h)


def randomize(module):
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(torch.randn_like(p) * (0.3 if p.dim() > 1 else 0.1) + (1.0 if "norm" in name.lower() and name.endswith("weight") else 0.0))


def record(name, module, inputs, output, loss=None):
    for k, p in module.named_parameters():
        tensors[f"{name}/param/{k}"] = p.detach().clone()
    for k, v in inputs.items():
        tensors[f"{name}/input/{k}"] = v.detach().clone()
    tensors[f"{name}/output"] = output.detach().clone()
    if loss is None:
        probe = torch.randn_like(output)
        tensors[f"{name}/probe"] = probe
        loss = (output * probe).sum()
    else:
        tensors[f"{name}/loss"] = loss.detach().reshape(1).clone()
    for p in module.parameters():
        p.grad = None
    for v in inputs.values():
        if v.is_floating_point():
            v.grad = None
    loss.backward()
    for k, p in module.named_parameters():
        tensors[f"{name}/grad/{k}"] = p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)
    for k, v in inputs.items():
        if v.is_floating_point() and v.grad is not None:
            tensors[f"{name}/grad_input/{k}"] = v.grad.detach().clone()


# 1. One EVA block with 3D rotary tables over a 2x3x4 grid (head 12 = 6 per axis pair set).
dim, heads = 24, 2
blk = EvaBlock(dim, heads, 64)
randomize(blk)
x = torch.randn(2, 24, dim, requires_grad=True)
record("eva_block", blk, {"x": x}, blk(x, rope_tables([2, 3, 4], dim // heads)))

# 2. The Primus encoder on 16^3 volumes (patch 4 -> 4^3 tokens), with and without masked tokens.
primus = Primus(1, dim, 4, 2, heads, 64)
randomize(primus)
vol = torch.randn(2, 1, 16, 16, 16, requires_grad=True)
out, _ = primus(vol)
record("primus", primus, {"volumes": vol}, out)
mask = torch.rand(2, 64) < 0.5
primus.zero_grad()
vol2 = vol.detach().clone().requires_grad_(True)
out_m, _ = primus(vol2, mask)
record("primus_masked", primus, {"volumes": vol2, "mask": mask}, out_m)


# 3. COLIPRI image and text towers and the report decoder, as one module with the C# model's names.
class Colipri(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = primus
        self.projector = nn.Conv3d(dim, 16, 1)
        self.pooler = AttentionPool(16, 2)


col = Colipri()
randomize(col.projector)
randomize(col.pooler)
vol3 = torch.randn(2, 1, 16, 16, 16, requires_grad=True)
tok, grid = col.backbone(vol3)
mp = col.projector(tok.transpose(1, 2).reshape(2, dim, *grid))
pooled = col.pooler(mp.flatten(2).transpose(1, 2)).squeeze(1)
record("colipri_image", col, {"volumes": vol3}, F.normalize(pooled, dim=-1))

dec = ReportDecoder(50, 16, 2, 1, 16, 16)
randomize(dec)
ids = torch.randint(0, 50, (2, 7))
attn = torch.ones(2, 7, dtype=torch.int64)
attn[1, 5:] = 0
enc = torch.randn(2, 64, 16, requires_grad=True)
record("report_decoder", dec, {"input_ids": ids, "attention_mask": attn, "image_tokens": enc}, dec(ids, attn, enc))

# 4. Losses.
losses = {}
img = F.normalize(torch.randn(3, 8), dim=-1).requires_grad_(True)
sent = F.normalize(torch.randn(3, 4, 2, 8), dim=-1).requires_grad_(True)
labels = torch.tensor([[1, 0, -1, 1], [0, 0, 1, -1], [-1, 1, 0, 0]])
logits = 20.0 * torch.einsum("be,bfke->bfk", img, sent)
known = labels >= 0
target = torch.where(known, 1 - labels.clamp(min=0), torch.full_like(labels, -100))
ce = F.cross_entropy(logits.reshape(-1, 2), target.reshape(-1), ignore_index=-100, reduction="sum") / known.sum()
ce.backward()
losses["opposite"] = {"image": img.detach().tolist(), "sentences": sent.detach().tolist(), "labels": labels.tolist(), "scale": 20.0,
                      "value": ce.item(), "grad_image": img.grad.tolist(), "grad_sentences": sent.grad.tolist()}
pred = torch.randn(2, 5, 6, requires_grad=True)
targ = torch.randn(2, 5, 6)
m = torch.tensor([[1, 0, 1, 1, 0], [0, 0, 0, 1, 1]], dtype=torch.bool)
for norm in (False, True):
    t = targ
    if norm:
        t = (targ - targ.mean(-1, keepdim=True)) / (targ.var(-1, keepdim=True) + 1e-6).sqrt()
    pred.grad = None
    v = (((pred - t) ** 2).mean(-1) * m).sum() / m.sum()
    v.backward()
    losses["mim_norm" if norm else "mim"] = {"prediction": pred.detach().tolist(), "target": targ.tolist(), "mask": m.tolist(),
                                             "value": v.item(), "grad": pred.grad.tolist()}
lg = torch.randn(2, 6, 11, requires_grad=True)
lab = torch.randint(0, 11, (2, 6))
lab[0, 4:] = -100
v = F.cross_entropy(lg[:, :-1].reshape(-1, 11), lab[:, 1:].reshape(-1), ignore_index=-100)
v.backward()
losses["lm"] = {"logits": lg.detach().tolist(), "labels": lab.tolist(), "value": v.item(), "grad": lg.grad.tolist()}

# 5. The Primus encoder with MedVlp's convolutional stem (channels 3, 5: two stride-2 stages), 32^3 volumes in patches
#    of 8 (the patch embedding cuts 2^3 patches of the stem's 8^3 output) -> 4^3 tokens. Drawn last, so the cases above
#    keep their values.
primus_stem = Primus(1, dim, 8, 2, heads, 64, stem=(3, 5))
randomize(primus_stem)
vol4 = torch.randn(2, 1, 32, 32, 32, requires_grad=True)
out_s, _ = primus_stem(vol4)
record("primus_stem", primus_stem, {"volumes": vol4}, out_s)

# 6. The same stem with a BatchNorm3d after each convolution (MedVlp's tiny size): state-dict names stem.{3i} (conv),
#    stem.{3i+1} (norm), stem.{3i+2} (GELU). Recorded in training mode (batch statistics; the running statistics move
#    with momentum 0.1 and the unbiased variance, as torch), then the evaluation-mode output with the updated running
#    statistics. Drawn after case 5, so every case above keeps its values.
primus_bn = Primus(1, dim, 8, 2, heads, 64, stem=(3, 5), stem_bn=True)
randomize(primus_bn)
with torch.no_grad():
    for name, m in primus_bn.stem.named_children():
        if isinstance(m, nn.BatchNorm3d):
            m.weight.copy_(1 + 0.2 * torch.randn_like(m.weight))
            m.running_mean.copy_(0.3 * torch.randn_like(m.running_mean))
            m.running_var.copy_(0.5 + torch.rand_like(m.running_var))
            tensors[f"primus_stem_bn/running_before/stem.{name}.running_mean"] = m.running_mean.clone()
            tensors[f"primus_stem_bn/running_before/stem.{name}.running_var"] = m.running_var.clone()
primus_bn.train()
vol5 = torch.randn(3, 1, 32, 32, 32, requires_grad=True)
out_b, _ = primus_bn(vol5)
record("primus_stem_bn", primus_bn, {"volumes": vol5}, out_b)
for name, m in primus_bn.stem.named_children():
    if isinstance(m, nn.BatchNorm3d):
        tensors[f"primus_stem_bn/running_after/stem.{name}.running_mean"] = m.running_mean.detach().clone()
        tensors[f"primus_stem_bn/running_after/stem.{name}.running_var"] = m.running_var.detach().clone()
primus_bn.eval()
with torch.no_grad():
    tensors["primus_stem_bn/eval_output"] = primus_bn(vol5.detach())[0].clone()

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
header, offset, blobs = {}, 0, []
for k in sorted(tensors):
    t = tensors[k]
    if t.dtype == torch.bool:
        data, dtype = t.to(torch.uint8).contiguous().numpy().tobytes(), "BOOL"
    elif t.dtype == torch.int64:
        data, dtype = t.contiguous().numpy().tobytes(), "I64"
    else:
        data, dtype = t.to(torch.float32).contiguous().numpy().tobytes(), "F32"
    header[k] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
    blobs.append(data)
    offset += len(data)
h = json.dumps(header, separators=(",", ":")).encode()
h += b" " * ((8 - len(h) % 8) % 8)
with open(os.path.join(here, "colipri_golden.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(h)))
    f.write(h)
    for b in blobs:
        f.write(b)
with open(os.path.join(here, "colipri_losses.json"), "w") as f:
    json.dump(losses, f)
print("wrote colipri_golden.safetensors (%d tensors, %d bytes) and colipri_losses.json" % (len(tensors), offset))
