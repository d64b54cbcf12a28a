"""Golden checkpoints and key lists for MedVlp's weight loading (issue 12).

Every checkpoint here is written in its source's own names AND format, by modules written after the released code:

* BERT (transformers' modeling_bert, BertForPreTraining layout): a tiny model whose state dict carries the `bert.`
  prefix, the pre-training heads (`cls.*`) and TensorFlow-era `LayerNorm.gamma`/`beta` names. Written as a
  torch.save zip (`bert_tiny.bin`, exactly what `torch.save(sd, "pytorch_model.bin")` makes) and as safetensors
  (`bert_tiny.safetensors`, written following the format specification: the `safetensors` package is not in Debian).
  The JSON holds the ids, mask and torch's last hidden state.
* GPT-2 (transformers' modeling_gpt2, GPT2Model without the `transformer.` prefix, Conv1D weights [in, out], the
  `attn.bias` causal-mask buffer): a tiny model as torch.save zip; the JSON holds an input and the output of
  `h.0.attn.c_attn` (a Conv1D: x @ W + b) and of `h.0.mlp.c_fc`.
* torch.save zips for the reader: F16/BF16/I64/bool tensors, views sharing one storage with offsets and strides, a
  nested training checkpoint {"model": ..., "epoch": ...}, and a pickle that references another global (os.system).
* Full-size key lists (name -> shape) from modules built on the meta device: GPT-2 124M (transformers'
  GPT2LMHeadModel layout), BLIP-2 Q-Former in LAVIS names (Qformer.bert.*, 32 query tokens, cross-attention every 2nd
  layer, intermediate_query/output_query; word/position embeddings and the MLM head removed as blip2_opt/t5 do) and in
  Hugging Face Blip2QFormerModel names, EVA ViT-g (39 blocks, width 1408, qkv + q_bias/v_bias, LAVIS eva_vit.py) and
  Hugging Face Blip2VisionModel, torchvision's real resnet50, and timm's VisionTransformer (ViT-B/16).

Run: /usr/bin/python3 tests/golden/make_weights_golden.py   (needs python3-torch 1.13 and python3-torchvision 0.14)
Writes tests/golden/data/weights/*.
"""
import json
import math
import os
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "weights")
os.makedirs(OUT, exist_ok=True)
torch.manual_seed(1234)


def write_safetensors(path, tensors, metadata=None):
    """The safetensors format: u64 header length, JSON header, raw little-endian data (sorted by name)."""
    names = sorted(tensors)
    header, blobs, offset = {}, [], 0
    dt = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64", torch.bool: "BOOL"}
    for n in names:
        t = tensors[n].detach().contiguous()
        raw = t.view(torch.int16).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
        header[n] = {"dtype": dt[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


# ----------------------------------------------------------------------------------------------- BERT (HF layout)
class BertEmbeddings(nn.Module):
    def __init__(s, c, device=None):
        super().__init__()
        s.word_embeddings = nn.Embedding(c["vocab"], c["hidden"], device=device)
        s.position_embeddings = nn.Embedding(c["positions"], c["hidden"], device=device)
        s.token_type_embeddings = nn.Embedding(c["types"], c["hidden"], device=device)
        s.LayerNorm = nn.LayerNorm(c["hidden"], eps=1e-12, device=device)

    def forward(s, ids):
        pos = torch.arange(ids.shape[1]).unsqueeze(0)
        return s.LayerNorm(s.word_embeddings(ids) + s.position_embeddings(pos) + s.token_type_embeddings(torch.zeros_like(ids)))


class BertSelfAttention(nn.Module):
    def __init__(s, c, device=None):
        super().__init__()
        h = c["hidden"]
        s.heads = c["heads"]
        s.query, s.key, s.value = (nn.Linear(h, h, device=device) for _ in range(3))

    def forward(s, x, mask):
        b, t, h = x.shape
        d = h // s.heads
        split = lambda y: y.view(b, t, s.heads, d).transpose(1, 2)
        q, k, v = split(s.query(x)), split(s.key(x)), split(s.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d) + mask
        return (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, h)


class BertSelfOutput(nn.Module):
    def __init__(s, c, n_in, device=None):
        super().__init__()
        s.dense = nn.Linear(n_in, c["hidden"], device=device)
        s.LayerNorm = nn.LayerNorm(c["hidden"], eps=1e-12, device=device)

    def forward(s, x, residual):
        return s.LayerNorm(s.dense(x) + residual)


class BertAttention(nn.Module):
    def __init__(s, c, device=None):
        super().__init__()
        s.self = BertSelfAttention(c, device)
        s.output = BertSelfOutput(c, c["hidden"], device)

    def forward(s, x, mask):
        return s.output(s.self(x, mask), x)


class BertIntermediate(nn.Module):
    def __init__(s, c, device=None):
        super().__init__()
        s.dense = nn.Linear(c["hidden"], c["inter"], device=device)

    def forward(s, x):
        return F.gelu(s.dense(x))


class BertLayer(nn.Module):
    def __init__(s, c, device=None):
        super().__init__()
        s.attention = BertAttention(c, device)
        s.intermediate = BertIntermediate(c, device)
        s.output = BertSelfOutput(c, c["inter"], device)

    def forward(s, x, mask):
        a = s.attention(x, mask)
        return s.output(s.intermediate(a), a)


class BertEncoder(nn.Module):
    def __init__(s, c, device=None):
        super().__init__()
        s.layer = nn.ModuleList(BertLayer(c, device) for _ in range(c["layers"]))

    def forward(s, x, mask):
        for l in s.layer:
            x = l(x, mask)
        return x


class BertPooler(nn.Module):
    def __init__(s, c, device=None):
        super().__init__()
        s.dense = nn.Linear(c["hidden"], c["hidden"], device=device)


class BertModel(nn.Module):
    def __init__(s, c, device=None, pooler=True):
        super().__init__()
        s.embeddings = BertEmbeddings(c, device)
        s.encoder = BertEncoder(c, device)
        if pooler:
            s.pooler = BertPooler(c, device)

    def forward(s, ids, mask):
        additive = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        return s.encoder(s.embeddings(ids), additive)


def randomize(module):
    with torch.no_grad():
        for n, p in module.named_parameters():
            if n.endswith("LayerNorm.weight") or n.endswith("ln_1.weight") or n.endswith("ln_2.weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            else:
                p.copy_(0.1 * torch.randn_like(p))


bert_cfg = dict(vocab=60, hidden=32, layers=2, heads=4, inter=48, positions=24, types=2)
bert = BertModel(bert_cfg).eval()
randomize(bert)
sd = {}
for k, v in bert.state_dict().items():
    k = "bert." + k
    if k.endswith("LayerNorm.weight"):
        k = k[: -len("weight")] + "gamma"
    elif k.endswith("LayerNorm.bias"):
        k = k[: -len("bias")] + "beta"
    sd[k] = v.clone()
sd["cls.predictions.bias"] = torch.randn(bert_cfg["vocab"])
sd["cls.predictions.transform.dense.weight"] = torch.randn(bert_cfg["hidden"], bert_cfg["hidden"])
sd["cls.seq_relationship.weight"] = torch.randn(2, bert_cfg["hidden"])
torch.save(sd, os.path.join(OUT, "bert_tiny.bin"))
write_safetensors(os.path.join(OUT, "bert_tiny.safetensors"), sd, {"format": "pt"})
ids = torch.tensor([[2, 17, 33, 5, 59, 8, 3], [2, 44, 12, 3, 0, 0, 0]])
mask = torch.tensor([[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0, 0]])
with torch.no_grad():
    hidden = bert(ids, mask)
golden = {"bert": {"config": bert_cfg, "ids": ids.tolist(), "mask": mask.tolist(), "hidden": hidden.flatten().tolist(),
                   "shape": list(hidden.shape), "keys": len(sd)}}


# ---------------------------------------------------------------------------------------- GPT-2 (HF layout, Conv1D)
class Conv1D(nn.Module):
    """transformers.pytorch_utils.Conv1D: weight stored [in, out], y = x @ W + b."""

    def __init__(s, nf, nx, device=None):
        super().__init__()
        s.weight = nn.Parameter(torch.empty(nx, nf, device=device))
        s.bias = nn.Parameter(torch.zeros(nf, device=device))

    def forward(s, x):
        return torch.addmm(s.bias, x.reshape(-1, x.shape[-1]), s.weight).view(*x.shape[:-1], -1)


class GPT2Attention(nn.Module):
    def __init__(s, e, positions, device=None):
        super().__init__()
        mask = torch.tril(torch.ones((positions, positions), dtype=torch.bool, device=device)).view(1, 1, positions, positions)
        s.register_buffer("bias", mask)  # persistent in the released checkpoints
        s.register_buffer("masked_bias", torch.tensor(-1e4, device=device))
        s.c_attn = Conv1D(3 * e, e, device)
        s.c_proj = Conv1D(e, e, device)


class GPT2MLP(nn.Module):
    def __init__(s, inner, e, device=None):
        super().__init__()
        s.c_fc = Conv1D(inner, e, device)
        s.c_proj = Conv1D(e, inner, device)


class GPT2Block(nn.Module):
    def __init__(s, e, positions, device=None):
        super().__init__()
        s.ln_1 = nn.LayerNorm(e, device=device)
        s.attn = GPT2Attention(e, positions, device)
        s.ln_2 = nn.LayerNorm(e, device=device)
        s.mlp = GPT2MLP(4 * e, e, device)


class GPT2Model(nn.Module):
    def __init__(s, vocab, positions, e, layers, device=None):
        super().__init__()
        s.wte = nn.Embedding(vocab, e, device=device)
        s.wpe = nn.Embedding(positions, e, device=device)
        s.h = nn.ModuleList(GPT2Block(e, positions, device) for _ in range(layers))
        s.ln_f = nn.LayerNorm(e, device=device)


class GPT2LMHeadModel(nn.Module):
    def __init__(s, vocab, positions, e, layers, device=None):
        super().__init__()
        s.transformer = GPT2Model(vocab, positions, e, layers, device)
        s.lm_head = nn.Linear(e, vocab, bias=False, device=device)


gpt = GPT2Model(50, 16, 24, 2).eval()
randomize(gpt)
torch.save(gpt.state_dict(), os.path.join(OUT, "gpt2_tiny.bin"))
x = torch.randn(2, 5, 24)
with torch.no_grad():
    golden["gpt2"] = {"x": x.flatten().tolist(), "x_shape": list(x.shape),
                      "c_attn": gpt.h[0].attn.c_attn(x).flatten().tolist(),
                      "c_fc": gpt.h[1].mlp.c_fc(x).flatten().tolist()}

# ------------------------------------------------------------------------------------- reader cases (torch.save zip)
base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
torch.save({
    "f16": torch.tensor([1.5, -2.25, 65504.0], dtype=torch.float16),
    "bf16": torch.tensor([1.5, -2.25, 3.0e38], dtype=torch.bfloat16),
    "i64": torch.tensor([[1, -2], [3, 4_000_000_000]], dtype=torch.int64),
    "flag": torch.tensor([True, False, True]),
    "scalar": torch.tensor(7.5),
    "whole": base,
    "row": base[2],             # shares the storage: offset 12
    "column": base[:, 3],       # stride 6
    "transposed": base.t(),     # strides (1, 6)
}, os.path.join(OUT, "views.pt"))
torch.save({"model": {"encoder.weight": torch.ones(2, 3), "encoder.bias": torch.zeros(2)},
            "epoch": 7, "config": {"lr": 1e-4, "name": "medblip"}}, os.path.join(OUT, "training_checkpoint.pth"))
torch.save({"weight": torch.ones(2), "hook": os.system}, os.path.join(OUT, "evil_global.pt"))
golden["views"] = {"whole": base.flatten().tolist(), "row": base[2].tolist(), "column": base[:, 3].tolist(),
                   "transposed": base.t().contiguous().flatten().tolist()}


# ------------------------------------------------------------------------- a tiny volume encoder exported to ONNX
class TinyVolumeEncoder(nn.Module):
    def __init__(s):
        super().__init__()
        s.conv = nn.Conv3d(1, 4, 3, stride=2, padding=1)
        s.proj = nn.Linear(4, 8)

    def forward(s, x):
        return s.proj(F.gelu(s.conv(x)).mean(dim=(2, 3, 4)))


vol = TinyVolumeEncoder().eval()
randomize(vol)
vx = torch.randn(3, 1, 8, 8, 8)
torch.onnx.export(vol, vx[:1], os.path.join(OUT, "volume_tiny.onnx"), input_names=["volume"], output_names=["embedding"],
                  dynamic_axes={"volume": {0: "batch"}, "embedding": {0: "batch"}}, opset_version=13)
with torch.no_grad():
    golden["volume"] = {"x": vx.flatten().tolist(), "x_shape": list(vx.shape), "y": vol(vx).flatten().tolist()}


# ------------------------------------------------------------------------------------------- full-size key lists
def keys_of(module, drop=()):
    return [{"name": k, "shape": list(v.shape)} for k, v in module.state_dict().items() if not any(k.endswith(d) for d in drop)]


meta = torch.device("meta")
key_lists = {}
key_lists["hf-gpt2"] = keys_of(GPT2LMHeadModel(50257, 1024, 768, 12, meta))
# The released gpt2 pytorch_model.bin has GPT2Model names (no transformer. prefix) and no lm_head (tied to wte).
key_lists["hf-gpt2-released"] = [{"name": k["name"][len("transformer."):], "shape": k["shape"]}
                                 for k in key_lists["hf-gpt2"] if k["name"].startswith("transformer.")]


class QFormerLayer(nn.Module):
    """LAVIS Qformer.py BertLayer with add_cross_attention (every cross_attention_freq-th layer) and query FFN."""

    def __init__(s, c, cross, hf, device=None):
        super().__init__()
        s.attention = BertAttention(c, device)
        if hf:  # transformers Blip2QFormerAttention: .attention (self-attention) + .output
            s.attention.attention = s.attention.self
            del s.attention.self
        if cross:
            s.crossattention = BertAttention(c, device)
            s.crossattention.self.key = nn.Linear(c["encoder_width"], c["hidden"], device=device)
            s.crossattention.self.value = nn.Linear(c["encoder_width"], c["hidden"], device=device)
            if hf:
                s.crossattention.attention = s.crossattention.self
                del s.crossattention.self
        s.intermediate = BertIntermediate(c, device)
        s.output = BertSelfOutput(c, c["inter"], device)
        s.intermediate_query = BertIntermediate(c, device)
        s.output_query = BertSelfOutput(c, c["inter"], device)


qcfg = dict(vocab=30522, hidden=768, layers=12, heads=12, inter=3072, positions=512, types=2, encoder_width=1408)


class LavisQFormer(nn.Module):
    def __init__(s, device):
        super().__init__()
        s.query_tokens = nn.Parameter(torch.zeros(1, 32, 768, device=device))
        s.Qformer = nn.Module()
        s.Qformer.bert = nn.Module()
        s.Qformer.bert.embeddings = nn.Module()
        s.Qformer.bert.embeddings.LayerNorm = nn.LayerNorm(768, device=device)
        s.Qformer.bert.encoder = nn.Module()
        s.Qformer.bert.encoder.layer = nn.ModuleList(QFormerLayer(qcfg, i % 2 == 0, False, device) for i in range(12))


class HfQFormer(nn.Module):
    def __init__(s, device):
        super().__init__()
        s.query_tokens = nn.Parameter(torch.zeros(1, 32, 768, device=device))
        s.qformer = nn.Module()
        s.qformer.layernorm = nn.LayerNorm(768, device=device)
        s.qformer.encoder = nn.Module()
        s.qformer.encoder.layer = nn.ModuleList(QFormerLayer(qcfg, i % 2 == 0, True, device) for i in range(12))


# blip2_opt / blip2_t5 drop the text FFN (intermediate/output) of every layer: only the query FFN is used.
drop_text_ffn = lambda keys: [k for k in keys if not any(f".{p}." in k["name"] for p in ("intermediate", "output")) or
                              any(f".{p}." in k["name"] for p in ("intermediate_query", "output_query", "attention.output", "crossattention.output"))]
key_lists["lavis-qformer"] = drop_text_ffn(keys_of(LavisQFormer(meta)))
key_lists["hf-blip2-qformer"] = drop_text_ffn(keys_of(HfQFormer(meta)))


class EvaBlock(nn.Module):
    """LAVIS eva_vit.py Block: norm1, Attention(qkv without bias + q_bias, v_bias, proj), norm2, Mlp(fc1, fc2)."""

    def __init__(s, dim, mlp, hf, device=None):
        super().__init__()
        n1, n2 = ("layer_norm1", "layer_norm2") if hf else ("norm1", "norm2")
        setattr(s, n1, nn.LayerNorm(dim, device=device))
        attn = nn.Module()
        attn.qkv = nn.Linear(dim, 3 * dim, bias=False, device=device)
        attn.q_bias = nn.Parameter(torch.zeros(dim, device=device))
        attn.v_bias = nn.Parameter(torch.zeros(dim, device=device))
        setattr(attn, "projection" if hf else "proj", nn.Linear(dim, dim, device=device))
        setattr(s, "self_attn" if hf else "attn", attn)
        setattr(s, n2, nn.LayerNorm(dim, device=device))
        s.mlp = nn.Module()
        s.mlp.fc1 = nn.Linear(dim, mlp, device=device)
        s.mlp.fc2 = nn.Linear(mlp, dim, device=device)


class LavisEva(nn.Module):
    def __init__(s, device, dim=1408, depth=39, mlp=6144, patches=256):
        super().__init__()
        s.visual_encoder = nn.Module()
        v = s.visual_encoder
        v.cls_token = nn.Parameter(torch.zeros(1, 1, dim, device=device))
        v.pos_embed = nn.Parameter(torch.zeros(1, patches + 1, dim, device=device))
        v.patch_embed = nn.Module()
        v.patch_embed.proj = nn.Conv2d(3, dim, 14, 14, device=device)
        v.blocks = nn.ModuleList(EvaBlock(dim, mlp, False, device) for _ in range(depth))
        s.ln_vision = nn.LayerNorm(dim, device=device)


class HfBlip2Vision(nn.Module):
    def __init__(s, device, dim=1408, depth=39, mlp=6144, patches=256):
        super().__init__()
        s.vision_model = nn.Module()
        m = s.vision_model
        m.embeddings = nn.Module()
        m.embeddings.class_embedding = nn.Parameter(torch.zeros(1, 1, dim, device=device))
        m.embeddings.patch_embedding = nn.Conv2d(3, dim, 14, 14, device=device)
        m.embeddings.position_embedding = nn.Parameter(torch.zeros(1, patches + 1, dim, device=device))
        m.encoder = nn.Module()
        m.encoder.layers = nn.ModuleList(EvaBlock(dim, mlp, True, device) for _ in range(depth))
        m.post_layernorm = nn.LayerNorm(dim, device=device)


key_lists["lavis-eva-vit"] = keys_of(LavisEva(meta))
key_lists["hf-blip2-vision"] = keys_of(HfBlip2Vision(meta))
key_lists["torchvision-resnet50"] = keys_of(torchvision.models.resnet50())


class TimmBlock(nn.Module):
    def __init__(s, dim, device):
        super().__init__()
        s.norm1 = nn.LayerNorm(dim, device=device)
        s.attn = nn.Module()
        s.attn.qkv = nn.Linear(dim, 3 * dim, device=device)
        s.attn.proj = nn.Linear(dim, dim, device=device)
        s.norm2 = nn.LayerNorm(dim, device=device)
        s.mlp = nn.Module()
        s.mlp.fc1 = nn.Linear(dim, 4 * dim, device=device)
        s.mlp.fc2 = nn.Linear(4 * dim, dim, device=device)


class TimmViT(nn.Module):
    """timm vision_transformer.VisionTransformer (vit_base_patch16_224)."""

    def __init__(s, device, dim=768, depth=12, patches=196, classes=1000):
        super().__init__()
        s.cls_token = nn.Parameter(torch.zeros(1, 1, dim, device=device))
        s.pos_embed = nn.Parameter(torch.zeros(1, patches + 1, dim, device=device))
        s.patch_embed = nn.Module()
        s.patch_embed.proj = nn.Conv2d(3, dim, 16, 16, device=device)
        s.blocks = nn.ModuleList(TimmBlock(dim, device) for _ in range(depth))
        s.norm = nn.LayerNorm(dim, device=device)
        s.head = nn.Linear(dim, classes, device=device)


key_lists["timm-vit"] = keys_of(TimmViT(meta))
for name, keys in key_lists.items():
    golden.setdefault("keys", {})[name] = keys
    print(f"{name}: {len(keys)} tensors, {sum(math.prod(k['shape']) for k in keys):,} elements")

with open(os.path.join(OUT, "weights_golden.json"), "w") as f:
    json.dump(golden, f)
print("wrote", OUT)
