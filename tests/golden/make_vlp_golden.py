"""Golden values for MedVlp's dual-encoder model (3D ViT + BERT), computed with PyTorch's own modules.

The reference is built only from standard torch.nn modules, never from MedVlp's code:
  * BERT layer  = nn.TransformerEncoderLayer(norm_first=False, activation="gelu")  (post-norm: LN(x + MHA(x)), LN(x + FFN(x)))
  * ViT block   = nn.TransformerEncoderLayer(norm_first=True,  activation="gelu")  (pre-norm:  x + MHA(LN(x)), x + FFN(LN(x)))
  * patch embed = nn.Conv3d(kernel = stride = patch)
  * attention pooling = nn.MultiheadAttention with a learned latent query
  * embeddings  = nn.Embedding word + position + token type, then nn.LayerNorm
The random weights are stored under MedVlp's (Hugging Face / timm) state-dict names, mapping PyTorch's fused
in_proj_weight = [W_q; W_k; W_v] onto attention.self.query/key/value (BERT) and attn.qkv (ViT), and
[W_q; W_k, W_v] onto attn_pool.q / attn_pool.kv. The weights are written as safetensors following the format
specification (8-byte little-endian header length, JSON header, raw little-endian data).

Writes data/vlp_tiny.safetensors and data/vlp_tiny.json (config, inputs, expected embeddings).
Run: /usr/bin/python3 tests/golden/make_vlp_golden.py
"""
import json
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from golden_io import save_f32_safetensors  # the shared writer (tests/golden/golden_io.py)

torch.manual_seed(1234)
torch.set_default_dtype(torch.float32)

CFG = {
    "volume": {"input_size": 16, "patch_size": 8, "in_channels": 1, "width": 16, "depth": 2, "heads": 2, "mlp_ratio": 2.0, "layer_norm_eps": 1e-6},
    "text": {"vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32,
             "max_position_embeddings": 24, "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_dropout_prob": 0.0,
             "attention_probs_dropout_prob": 0.0, "add_pooling_layer": False},
    "embedding_dim": 8,
    "text_pooling": "mean",
    "max_text_tokens": 24,
    "initial_temperature": 0.07,
    "max_logit_scale": 100.0,
}
V, T = CFG["volume"], CFG["text"]
W, H = V["width"], T["hidden_size"]
state = {}


def rnd(*shape, std=0.2):
    return torch.randn(*shape) * std


# ---- volume encoder -------------------------------------------------------------------------------------------
grid = V["input_size"] // V["patch_size"]
conv = nn.Conv3d(1, W, V["patch_size"], stride=V["patch_size"])
cls_token = rnd(1, 1, W)
pos_embed = rnd(1, grid ** 3 + 1, W)
vit_layers = [nn.TransformerEncoderLayer(W, V["heads"], int(W * V["mlp_ratio"]), dropout=0.0, activation="gelu",
                                         layer_norm_eps=V["layer_norm_eps"], batch_first=True, norm_first=True) for _ in range(V["depth"])]
vit_norm = nn.LayerNorm(W, eps=V["layer_norm_eps"])
pool = nn.MultiheadAttention(W, V["heads"], batch_first=True)
latent = rnd(1, 1, W)
visual_projection = nn.Linear(W, CFG["embedding_dim"], bias=False)

# ---- text encoder ---------------------------------------------------------------------------------------------
word = nn.Embedding(T["vocab_size"], H)
position = nn.Embedding(T["max_position_embeddings"], H)
token_type = nn.Embedding(T["type_vocab_size"], H)
emb_norm = nn.LayerNorm(H, eps=T["layer_norm_eps"])
bert_layers = [nn.TransformerEncoderLayer(H, T["num_attention_heads"], T["intermediate_size"], dropout=0.0, activation="gelu",
                                          layer_norm_eps=T["layer_norm_eps"], batch_first=True, norm_first=False)
               for _ in range(T["num_hidden_layers"])]
text_projection = nn.Linear(H, CFG["embedding_dim"], bias=False)
logit_scale = torch.tensor(math.log(1 / 0.07))

# Randomise every LayerNorm and bias too, so a swapped or ignored parameter shows.
with torch.no_grad():
    for m in [vit_norm, emb_norm] + vit_layers + bert_layers:
        for p in m.parameters():
            p.add_(rnd(*p.shape, std=0.1))
    for p in pool.parameters():
        p.add_(rnd(*p.shape, std=0.1))

# ---- MedVlp state-dict names ----------------------------------------------------------------------------------
state["vision_model.patch_embed.proj.weight"] = conv.weight
state["vision_model.patch_embed.proj.bias"] = conv.bias
state["vision_model.cls_token"] = cls_token
state["vision_model.pos_embed"] = pos_embed
for i, l in enumerate(vit_layers):
    p = f"vision_model.blocks.{i}."
    state[p + "norm1.weight"], state[p + "norm1.bias"] = l.norm1.weight, l.norm1.bias
    state[p + "attn.qkv.weight"], state[p + "attn.qkv.bias"] = l.self_attn.in_proj_weight, l.self_attn.in_proj_bias
    state[p + "attn.proj.weight"], state[p + "attn.proj.bias"] = l.self_attn.out_proj.weight, l.self_attn.out_proj.bias
    state[p + "norm2.weight"], state[p + "norm2.bias"] = l.norm2.weight, l.norm2.bias
    state[p + "mlp.fc1.weight"], state[p + "mlp.fc1.bias"] = l.linear1.weight, l.linear1.bias
    state[p + "mlp.fc2.weight"], state[p + "mlp.fc2.bias"] = l.linear2.weight, l.linear2.bias
state["vision_model.norm.weight"], state["vision_model.norm.bias"] = vit_norm.weight, vit_norm.bias
state["vision_model.attn_pool.latent"] = latent
state["vision_model.attn_pool.q.weight"] = pool.in_proj_weight[:W]
state["vision_model.attn_pool.q.bias"] = pool.in_proj_bias[:W]
state["vision_model.attn_pool.kv.weight"] = pool.in_proj_weight[W:]
state["vision_model.attn_pool.kv.bias"] = pool.in_proj_bias[W:]
state["vision_model.attn_pool.proj.weight"], state["vision_model.attn_pool.proj.bias"] = pool.out_proj.weight, pool.out_proj.bias
state["visual_projection.weight"] = visual_projection.weight
state["text_model.embeddings.word_embeddings.weight"] = word.weight
state["text_model.embeddings.position_embeddings.weight"] = position.weight
state["text_model.embeddings.token_type_embeddings.weight"] = token_type.weight
state["text_model.embeddings.LayerNorm.weight"], state["text_model.embeddings.LayerNorm.bias"] = emb_norm.weight, emb_norm.bias
for i, l in enumerate(bert_layers):
    p = f"text_model.encoder.layer.{i}."
    wq, wk, wv = l.self_attn.in_proj_weight.chunk(3)
    bq, bk, bv = l.self_attn.in_proj_bias.chunk(3)
    state[p + "attention.self.query.weight"], state[p + "attention.self.query.bias"] = wq, bq
    state[p + "attention.self.key.weight"], state[p + "attention.self.key.bias"] = wk, bk
    state[p + "attention.self.value.weight"], state[p + "attention.self.value.bias"] = wv, bv
    state[p + "attention.output.dense.weight"], state[p + "attention.output.dense.bias"] = l.self_attn.out_proj.weight, l.self_attn.out_proj.bias
    state[p + "attention.output.LayerNorm.weight"], state[p + "attention.output.LayerNorm.bias"] = l.norm1.weight, l.norm1.bias
    state[p + "intermediate.dense.weight"], state[p + "intermediate.dense.bias"] = l.linear1.weight, l.linear1.bias
    state[p + "output.dense.weight"], state[p + "output.dense.bias"] = l.linear2.weight, l.linear2.bias
    state[p + "output.LayerNorm.weight"], state[p + "output.LayerNorm.bias"] = l.norm2.weight, l.norm2.bias
state["text_projection.weight"] = text_projection.weight
state["logit_scale"] = logit_scale

# ---- inputs and reference forward -----------------------------------------------------------------------------
volumes = torch.rand(2, 1, V["input_size"], V["input_size"], V["input_size"])
ids = torch.tensor([[2, 17, 5, 33, 9, 3, 0], [2, 41, 3, 0, 0, 0, 0]])
mask = (ids != 0).long()
mask[0, 5] = 1  # id 3 is a real token; id 0 is padding

with torch.no_grad():
    x = conv(volumes).flatten(2).transpose(1, 2)
    x = torch.cat([cls_token.expand(x.shape[0], -1, -1), x], 1) + pos_embed
    for l in vit_layers:
        l.eval()
        x = l(x)
    x = vit_norm(x)
    pooled, _ = pool(latent.expand(x.shape[0], -1, -1), x, x, need_weights=False)
    volume_embeddings = F.normalize(visual_projection(pooled[:, 0]), dim=-1)

    positions = torch.arange(ids.shape[1]).unsqueeze(0)
    h = emb_norm(word(ids) + position(positions) + token_type(torch.zeros_like(ids)))
    for l in bert_layers:
        l.eval()
        h = l(h, src_key_padding_mask=(mask == 0))
    m = mask.unsqueeze(-1).float()
    text_pooled = (h * m).sum(1) / m.sum(1)
    text_embeddings = F.normalize(text_projection(text_pooled), dim=-1)

# ---- write ----------------------------------------------------------------------------------------------------
here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
os.makedirs(here, exist_ok=True)
save_f32_safetensors(os.path.join(here, "vlp_tiny.safetensors"), state)

golden = {
    "torch_version": torch.__version__,
    "config": CFG,
    "volumes_shape": list(volumes.shape),
    "volumes": volumes.flatten().tolist(),
    "input_ids": ids.tolist(),
    "attention_mask": mask.tolist(),
    "volume_embeddings": volume_embeddings.tolist(),
    "text_embeddings": text_embeddings.tolist(),
}
with open(os.path.join(here, "vlp_tiny.json"), "w") as f:
    json.dump(golden, f, indent=1)
print("wrote vlp_tiny.safetensors (%d tensors) and vlp_tiny.json" % len(state))
