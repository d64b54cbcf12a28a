"""Golden values for MedVlp's building blocks (src/MedVlp/Modeling/Blocks), from PyTorch modules written after the
released reference code, never from MedVlp's code:

  * eva_attn      LAVIS lavis/models/eva_vit.py Attention: qkv without bias, q_bias / v_bias, k bias zero, q * head_dim**-0.5
  * timm_attn     timm Attention: fused qkv with bias
  * eva_block     LAVIS eva_vit.py Block with init_values (gamma_1 / gamma_2 -> MedVlp's ls1.gamma / ls2.gamma), pre-norm
  * rope_attn     EVA-02 style rotary attention (VisionRotaryEmbeddingFast extended to 3 axes: the head size split over
                  depth / height / width, interleaved pairs, rotate_half as EVA-02), CLS token not rotated
  * swiglu        timm SwiGLU: fc2(norm(silu(fc1_g(x)) * fc1_x(x)))
  * post_norm     a post-norm transformer layer (norm(x + attn(x)), norm(x + mlp(x)))
  * bert_layer    Hugging Face modeling_bert.py BertLayer (self-attention, BertSelfOutput, BertIntermediate, BertOutput)
                  with a padding mask ((1 - mask) * finfo.min)
  * qformer_layer LAVIS lavis/models/blip2_models/Qformer.py BertLayer with crossattention (keys/values from a wider
                  encoder) and intermediate_query / output_query, query_length = 4 learned queries + 5 text tokens,
                  the BLIP-2 multimodal causal mask (queries see queries, text sees queries and earlier text), padded
                  text, padded image tokens (mask * -10000 as LAVIS)
  * bert_embed    Hugging Face BertEmbeddings with token types and past_key_values_length = 3
  * qformer_embed LAVIS BertEmbeddings (no token types) with query_embeds prepended
  * clip_pool     OpenAI CLIP AttentionPool2d (F.multi_head_attention_forward)
  * gpt2_block    Hugging Face modeling_gpt2.py GPT2Block (Linear in place of Conv1D: weights stored [out, in])
  * gpt2_lm       Hugging Face GPT2LMHeadModel (2 layers, tied lm_head) on right-padded ids with labels (-100 ignored):
                  logits, shifted cross-entropy loss and its gradients
  * cross_attn    torch's F.multi_head_attention_forward with separate q / k / v weights, keys and values from a 24-wide
                  context with padding (MedVlp's q, kv = [k; v], proj)
  * pos_interp_*  a position embedding resampled as timm's resample_abs_pos_embed (CLS kept; 3D trilinear, 2D bicubic)

Also writes data/blocks_keys.json: parameter names, shapes and counts of EVA ViT-g, the BLIP-2 Q-Former and GPT-2 small
built from the reference classes below at full size (see the end of the script).

Every case holds random weights (biases and LayerNorms randomised too) under MedVlp's state-dict names, the inputs, the
outputs, and the gradients of every parameter and floating input of sum(output * probe) (a fixed random probe), or of
the loss for gpt2_lm. Everything is in one safetensors file (format specification: 8-byte little-endian header length,
JSON header, raw little-endian data) with keys "<case>/param/<name>", "<case>/input/<name>", "<case>/output",
"<case>/probe", "<case>/grad/<name>", "<case>/grad_input/<name>", "<case>/loss"; the JSON holds each case's sizes.
Writes data/blocks_golden.safetensors, data/blocks_golden.json and data/blocks_keys.json.
Run: /usr/bin/python3 tests/golden/make_blocks_golden.py
"""
import json
import math
import os
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(2024)
torch.set_default_dtype(torch.float32)
tensors = {}
meta = {}


def randomise(module, std=0.1):
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p) * std)


def record(case, params, inputs, output, loss=None, sizes=None):
    """params: dict MedVlp-name -> Parameter; inputs: dict name -> tensor (float ones get gradients)."""
    for name, p in params.items():
        tensors[f"{case}/param/{name}"] = p.detach().clone()
    for name, t in inputs.items():
        tensors[f"{case}/input/{name}"] = t.detach().clone()
    tensors[f"{case}/output"] = output.detach().clone()
    if loss is None:
        probe = torch.randn_like(output)
        tensors[f"{case}/probe"] = probe
        loss = (output * probe).sum()
    else:
        tensors[f"{case}/loss"] = loss.detach().clone().reshape(1)
    grads = torch.autograd.grad(loss, list(params.values()) + [t for t in inputs.values() if t.is_floating_point()], allow_unused=True)
    names = list(params.keys()) + [f"input:{n}" for n, t in inputs.items() if t.is_floating_point()]
    for name, g in zip(names, grads):
        assert g is not None, (case, name)
        key = f"{case}/grad_input/{name[6:]}" if name.startswith("input:") else f"{case}/grad/{name}"
        tensors[key] = g.detach().clone()
    meta[case] = sizes or {}


def leaf(*shape):
    return torch.randn(*shape).requires_grad_()


# ---- LAVIS eva_vit.py Attention ------------------------------------------------------------------------------------
class EvaAttention(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)

    def qkv_heads(self, x):
        B, N, C = x.shape
        qkv_bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias, requires_grad=False), self.v_bias))
        qkv = F.linear(input=x, weight=self.qkv.weight, bias=qkv_bias)
        qkv = qkv.reshape(B, N, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        return qkv[0], qkv[1], qkv[2]

    def attend(self, q, k, v, B, N):
        q = q * self.scale
        attn = (q @ k.transpose(-2, -1)).softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, N, -1)
        return self.proj(x)

    def forward(self, x, rope=None):
        B, N, C = x.shape
        q, k, v = self.qkv_heads(x)
        if rope is not None:
            q = torch.cat([q[:, :, :1], rope(q[:, :, 1:])], 2)
            k = torch.cat([k[:, :, :1], rope(k[:, :, 1:])], 2)
        return self.attend(q, k, v, B, N)


def eva_params(a, prefix=""):
    return {prefix + "qkv.weight": a.qkv.weight, prefix + "q_bias": a.q_bias, prefix + "v_bias": a.v_bias,
            prefix + "proj.weight": a.proj.weight, prefix + "proj.bias": a.proj.bias}


W, HEADS = 16, 2
attn = EvaAttention(W, HEADS)
randomise(attn, 0.2)
x = leaf(2, 5, W)
record("eva_attn", eva_params(attn), {"x": x}, attn(x), sizes={"width": W, "heads": HEADS})


# ---- timm Attention (fused qkv with bias) --------------------------------------------------------------------------
class TimmAttention(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N, C))


attn = TimmAttention(W, HEADS)
randomise(attn, 0.2)
x = leaf(2, 6, W)
record("timm_attn", {"qkv.weight": attn.qkv.weight, "qkv.bias": attn.qkv.bias, "proj.weight": attn.proj.weight,
                     "proj.bias": attn.proj.bias}, {"x": x}, attn(x), sizes={"width": W, "heads": HEADS})


# ---- LAVIS eva_vit.py Block with init_values (LayerScale) ----------------------------------------------------------
class EvaMlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class EvaBlock(nn.Module):
    def __init__(self, dim, num_heads, mlp_hidden, init_values):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = EvaAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = EvaMlp(dim, mlp_hidden)
        if init_values is not None:
            self.gamma_1 = nn.Parameter(init_values * torch.ones(dim))
            self.gamma_2 = nn.Parameter(init_values * torch.ones(dim))

    def forward(self, x):
        x = x + self.gamma_1 * self.attn(self.norm1(x))
        x = x + self.gamma_2 * self.mlp(self.norm2(x))
        return x


def ln_params(n, prefix):
    return {prefix + "weight": n.weight, prefix + "bias": n.bias}


def lin_params(l, prefix):
    d = {prefix + "weight": l.weight}
    if l.bias is not None:
        d[prefix + "bias"] = l.bias
    return d


MLP = 24
block = EvaBlock(W, HEADS, MLP, 0.5)
randomise(block, 0.2)
x = leaf(2, 5, W)
params = {**ln_params(block.norm1, "norm1."), **eva_params(block.attn, "attn."), "ls1.gamma": block.gamma_1,
          **ln_params(block.norm2, "norm2."), **lin_params(block.mlp.fc1, "mlp.fc1."), **lin_params(block.mlp.fc2, "mlp.fc2."),
          "ls2.gamma": block.gamma_2}
record("eva_block", params, {"x": x}, block(x), sizes={"width": W, "heads": HEADS, "mlp_hidden": MLP, "layer_scale": 0.5})


# ---- EVA-02 style rotary attention over a 3D grid ------------------------------------------------------------------
def rotate_half(x):
    # EVA-02: rearrange(x, '... (d r) -> ... d r', r=2); x1, x2 = x.unbind(-1); stack((-x2, x1), -1); back.
    x = x.reshape(*x.shape[:-1], -1, 2)
    x1, x2 = x.unbind(-1)
    return torch.stack((-x2, x1), dim=-1).flatten(-2)


class VisionRotaryEmbedding3d(nn.Module):
    """EVA-02's VisionRotaryEmbeddingFast with a third axis: per-axis size dim, freqs 1 / theta^(2i / dim)."""

    def __init__(self, dim, grid, theta=10000):
        super().__init__()
        freqs = 1.0 / (theta ** (torch.arange(0, dim, 2)[: (dim // 2)].float() / dim))
        per_axis = []
        for n in grid:
            f = torch.einsum("..., f -> ... f", torch.arange(n).float(), freqs)
            per_axis.append(f.repeat_interleave(2, dim=-1))  # '... n -> ... (n r)', r = 2
        d, h, w = grid
        full = torch.cat([per_axis[0][:, None, None, :].expand(d, h, w, -1),
                          per_axis[1][None, :, None, :].expand(d, h, w, -1),
                          per_axis[2][None, None, :, :].expand(d, h, w, -1)], dim=-1)
        self.register_buffer("freqs_cos", full.cos().reshape(-1, full.shape[-1]))
        self.register_buffer("freqs_sin", full.sin().reshape(-1, full.shape[-1]))

    def forward(self, t):
        return t * self.freqs_cos + rotate_half(t) * self.freqs_sin


RW, RHEADS, GRID = 24, 2, (2, 3, 2)  # head size 12: 4 channels per axis
rope = VisionRotaryEmbedding3d(RW // RHEADS // 3, GRID)
attn = EvaAttention(RW, RHEADS)
randomise(attn, 0.2)
x = leaf(2, 1 + GRID[0] * GRID[1] * GRID[2], RW)
record("rope_attn", eva_params(attn), {"x": x}, attn(x, rope), sizes={"width": RW, "heads": RHEADS, "grid": list(GRID)})
q = leaf(1, RHEADS, GRID[0] * GRID[1] * GRID[2], RW // RHEADS)
record("rope_apply", {}, {"q": q}, rope(q), sizes={"head_size": RW // RHEADS, "grid": list(GRID)})


# ---- timm SwiGLU ---------------------------------------------------------------------------------------------------
class SwiGLU(nn.Module):
    def __init__(self, dim, hidden, norm):
        super().__init__()
        self.fc1_g = nn.Linear(dim, hidden)
        self.fc1_x = nn.Linear(dim, hidden)
        self.act = nn.SiLU()
        self.norm = nn.LayerNorm(hidden, eps=1e-6) if norm else nn.Identity()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.norm(self.act(self.fc1_g(x)) * self.fc1_x(x)))


mlp = SwiGLU(W, MLP, norm=True)
randomise(mlp, 0.2)
x = leaf(2, 3, W)
record("swiglu", {**lin_params(mlp.fc1_g, "fc1_g."), **lin_params(mlp.fc1_x, "fc1_x."), **ln_params(mlp.norm, "norm."),
                  **lin_params(mlp.fc2, "fc2.")}, {"x": x}, mlp(x), sizes={"width": W, "hidden": MLP})


# ---- post-norm transformer layer -----------------------------------------------------------------------------------
class PostNormLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm1 = nn.LayerNorm(W, eps=1e-6)
        self.attn = TimmAttention(W, HEADS)
        self.norm2 = nn.LayerNorm(W, eps=1e-6)
        self.mlp = EvaMlp(W, MLP)

    def forward(self, x):
        x = self.norm1(x + self.attn(x))
        return self.norm2(x + self.mlp(x))


layer = PostNormLayer()
randomise(layer, 0.2)
x = leaf(2, 4, W)
params = {**ln_params(layer.norm1, "norm1."), **lin_params(layer.attn.qkv, "attn.qkv."), **lin_params(layer.attn.proj, "attn.proj."),
          **ln_params(layer.norm2, "norm2."), **lin_params(layer.mlp.fc1, "mlp.fc1."), **lin_params(layer.mlp.fc2, "mlp.fc2.")}
record("post_norm", params, {"x": x}, layer(x), sizes={"width": W, "heads": HEADS, "mlp_hidden": MLP})


# ---- Hugging Face modeling_bert.py / LAVIS Qformer.py BertLayer ----------------------------------------------------
class BertSelfAttention(nn.Module):
    def __init__(self, hidden, heads, kv_width=None):
        super().__init__()
        self.heads = heads
        self.head_size = hidden // heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(kv_width or hidden, hidden)
        self.value = nn.Linear(kv_width or hidden, hidden)

    def transpose_for_scores(self, x):
        return x.view(x.size()[:-1] + (self.heads, self.head_size)).permute(0, 2, 1, 3)

    def forward(self, hidden_states, attention_mask=None, encoder_hidden_states=None, encoder_attention_mask=None):
        if encoder_hidden_states is not None:
            key_layer = self.transpose_for_scores(self.key(encoder_hidden_states))
            value_layer = self.transpose_for_scores(self.value(encoder_hidden_states))
            attention_mask = encoder_attention_mask
        else:
            key_layer = self.transpose_for_scores(self.key(hidden_states))
            value_layer = self.transpose_for_scores(self.value(hidden_states))
        query_layer = self.transpose_for_scores(self.query(hidden_states))
        scores = torch.matmul(query_layer, key_layer.transpose(-1, -2)) / math.sqrt(self.head_size)
        if attention_mask is not None:
            scores = scores + attention_mask
        probs = nn.functional.softmax(scores, dim=-1)
        context = torch.matmul(probs, value_layer).permute(0, 2, 1, 3).contiguous()
        return context.view(context.size()[:-2] + (self.heads * self.head_size,))


class BertSelfOutput(nn.Module):
    def __init__(self, in_size, hidden):
        super().__init__()
        self.dense = nn.Linear(in_size, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=1e-12)

    def forward(self, hidden_states, input_tensor):
        return self.LayerNorm(self.dense(hidden_states) + input_tensor)


class BertAttention(nn.Module):
    def __init__(self, hidden, heads, kv_width=None):
        super().__init__()
        self.self = BertSelfAttention(hidden, heads, kv_width)
        self.output = BertSelfOutput(hidden, hidden)

    def forward(self, hidden_states, attention_mask=None, encoder_hidden_states=None, encoder_attention_mask=None):
        return self.output(self.self(hidden_states, attention_mask, encoder_hidden_states, encoder_attention_mask), hidden_states)


class BertIntermediate(nn.Module):
    def __init__(self, hidden, inter):
        super().__init__()
        self.dense = nn.Linear(hidden, inter)

    def forward(self, x):
        return F.gelu(self.dense(x))


class BertLayer(nn.Module):
    """HF BertLayer (query_length = 0) and LAVIS Qformer BertLayer (query_length > 0)."""

    def __init__(self, hidden, heads, inter, cross_width=None, query_ffn=False):
        super().__init__()
        self.attention = BertAttention(hidden, heads)
        self.has_cross_attention = cross_width is not None
        if self.has_cross_attention:
            self.crossattention = BertAttention(hidden, heads, cross_width)
        self.intermediate = BertIntermediate(hidden, inter)
        self.output = BertSelfOutput(inter, hidden)
        if query_ffn:
            self.intermediate_query = BertIntermediate(hidden, inter)
            self.output_query = BertSelfOutput(inter, hidden)

    def feed_forward_chunk(self, attention_output):
        return self.output(self.intermediate(attention_output), attention_output)

    def feed_forward_chunk_query(self, attention_output):
        return self.output_query(self.intermediate_query(attention_output), attention_output)

    def forward(self, hidden_states, attention_mask=None, encoder_hidden_states=None, encoder_attention_mask=None, query_length=0):
        attention_output = self.attention(hidden_states, attention_mask)
        if query_length > 0:
            query_attention_output = attention_output[:, :query_length, :]
            if self.has_cross_attention:
                query_attention_output = self.crossattention(query_attention_output, attention_mask, encoder_hidden_states, encoder_attention_mask)
            layer_output = self.feed_forward_chunk_query(query_attention_output)
            if attention_output.shape[1] > query_length:
                layer_output_text = self.feed_forward_chunk(attention_output[:, query_length:, :])
                layer_output = torch.cat([layer_output, layer_output_text], dim=1)
        else:
            layer_output = self.feed_forward_chunk(attention_output)
        return layer_output


def bert_attention_params(a, prefix):
    return {**lin_params(a.self.query, prefix + "self.query."), **lin_params(a.self.key, prefix + "self.key."),
            **lin_params(a.self.value, prefix + "self.value."), **lin_params(a.output.dense, prefix + "output.dense."),
            **ln_params(a.output.LayerNorm, prefix + "output.LayerNorm.")}


def bert_layer_params(l):
    p = bert_attention_params(l.attention, "attention.")
    if l.has_cross_attention:
        p.update(bert_attention_params(l.crossattention, "crossattention."))
    p.update(lin_params(l.intermediate.dense, "intermediate.dense."))
    p.update(lin_params(l.output.dense, "output.dense."))
    p.update(ln_params(l.output.LayerNorm, "output.LayerNorm."))
    if hasattr(l, "intermediate_query"):
        p.update(lin_params(l.intermediate_query.dense, "intermediate_query.dense."))
        p.update(lin_params(l.output_query.dense, "output_query.dense."))
        p.update(ln_params(l.output_query.LayerNorm, "output_query.LayerNorm."))
    return p


INTER = 32
layer = BertLayer(W, HEADS, INTER)
randomise(layer, 0.2)
x = leaf(2, 6, W)
mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
extended = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min  # HF get_extended_attention_mask
record("bert_layer", bert_layer_params(layer), {"x": x, "mask": mask}, layer(x, extended),
       sizes={"hidden": W, "heads": HEADS, "intermediate": INTER})

ENC, QUERIES, TEXT = 24, 4, 5
layer = BertLayer(W, HEADS, INTER, cross_width=ENC, query_ffn=True)
randomise(layer, 0.2)
x = leaf(2, QUERIES + TEXT, W)
encoder = leaf(2, 7, ENC)
text_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
image_mask = torch.tensor([[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0, 0]])
# BLIP-2's multimodal causal mask: queries see queries; text sees all queries and earlier text (and not padding).
L = QUERIES + TEXT
allowed = torch.zeros(2, L, L)
allowed[:, :, :QUERIES] = 1
allowed[:, QUERIES:, QUERIES:] = torch.tril(torch.ones(TEXT, TEXT))
allowed = allowed * torch.cat([torch.ones(2, QUERIES, dtype=torch.long), text_mask], 1)[:, None, :]
self_mask = (1.0 - allowed[:, None, :, :]) * -10000.0  # LAVIS
cross_mask = (1.0 - image_mask[:, None, None, :].float()) * -10000.0
record("qformer_layer", bert_layer_params(layer),
       {"x": x, "encoder": encoder, "text_mask": text_mask, "image_mask": image_mask},
       layer(x, self_mask, encoder, cross_mask, query_length=QUERIES),
       sizes={"hidden": W, "heads": HEADS, "intermediate": INTER, "encoder_width": ENC, "queries": QUERIES})


# ---- BertEmbeddings: Hugging Face (token types, past length) and LAVIS (query_embeds, no token types) --------------
VOCAB, POS = 30, 20
word = nn.Embedding(VOCAB, W)
position = nn.Embedding(POS, W)
token_type = nn.Embedding(2, W)
norm = nn.LayerNorm(W, eps=1e-12)
for m in (word, position, token_type, norm):
    randomise(m, 0.2)
ids = torch.tensor([[3, 7, 1, 9], [4, 4, 2, 0]])
types = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1]])
past = 3
pos_ids = torch.arange(past, past + 4)[None, :]
hf = norm(word(ids) + token_type(types) + position(pos_ids))  # HF: inputs_embeds + token_type, then += position
record("bert_embed", {"word_embeddings.weight": word.weight, "position_embeddings.weight": position.weight,
                      "token_type_embeddings.weight": token_type.weight, **ln_params(norm, "LayerNorm.")},
       {"ids": ids, "types": types}, hf, sizes={"hidden": W, "vocab": VOCAB, "positions": POS, "types": 2, "offset": past})

query = leaf(2, 3, W)
lavis = norm(torch.cat([query, word(ids) + position(torch.arange(4)[None, :])], 1))
record("qformer_embed", {"word_embeddings.weight": word.weight, "position_embeddings.weight": position.weight, **ln_params(norm, "LayerNorm.")},
       {"ids": ids, "query": query}, lavis, sizes={"hidden": W, "vocab": VOCAB, "positions": POS, "types": 0})


# ---- OpenAI CLIP AttentionPool2d -----------------------------------------------------------------------------------
class AttentionPool2d(nn.Module):
    def __init__(self, spacial_dim, embed_dim, num_heads, output_dim=None):
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.randn(spacial_dim ** 2 + 1, embed_dim) / embed_dim ** 0.5)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.c_proj = nn.Linear(embed_dim, output_dim or embed_dim)
        self.num_heads = num_heads

    def forward(self, x):
        x = x.flatten(start_dim=2).permute(2, 0, 1)  # NCHW -> (HW)NC
        x = torch.cat([x.mean(dim=0, keepdim=True), x], dim=0)
        x = x + self.positional_embedding[:, None, :].to(x.dtype)
        x, _ = F.multi_head_attention_forward(
            query=x[:1], key=x, value=x, embed_dim_to_check=x.shape[-1], num_heads=self.num_heads,
            q_proj_weight=self.q_proj.weight, k_proj_weight=self.k_proj.weight, v_proj_weight=self.v_proj.weight,
            in_proj_weight=None, in_proj_bias=torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias]),
            bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0, out_proj_weight=self.c_proj.weight,
            out_proj_bias=self.c_proj.bias, use_separate_proj_weight=True, training=self.training, need_weights=False)
        return x.squeeze(0)


pool = AttentionPool2d(3, W, HEADS, output_dim=12)
randomise(pool, 0.2)
fmap = leaf(2, W, 3, 3)
record("clip_pool", {"positional_embedding": pool.positional_embedding, **lin_params(pool.k_proj, "k_proj."),
                     **lin_params(pool.q_proj, "q_proj."), **lin_params(pool.v_proj, "v_proj."), **lin_params(pool.c_proj, "c_proj.")},
       {"x": fmap}, pool(fmap), sizes={"width": W, "heads": HEADS, "tokens": 9, "output": 12})


# ---- Hugging Face modeling_gpt2.py ---------------------------------------------------------------------------------
def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class GPT2Attention(nn.Module):
    def __init__(self, n_embd, n_head, n_positions):
        super().__init__()
        self.register_buffer("bias", torch.tril(torch.ones((n_positions, n_positions), dtype=torch.bool)).view(1, 1, n_positions, n_positions))
        self.num_heads, self.head_dim, self.split_size = n_head, n_embd // n_head, n_embd
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)  # HF Conv1D(3 * n_embd, n_embd) stores this weight transposed
        self.c_proj = nn.Linear(n_embd, n_embd)

    def _split_heads(self, tensor):
        return tensor.view(tensor.size()[:-1] + (self.num_heads, self.head_dim)).permute(0, 2, 1, 3)

    def forward(self, hidden_states, attention_mask=None):
        query, key, value = self.c_attn(hidden_states).split(self.split_size, dim=2)
        query, key, value = self._split_heads(query), self._split_heads(key), self._split_heads(value)
        attn_weights = torch.matmul(query, key.transpose(-1, -2)) / torch.full([], value.size(-1) ** 0.5)
        query_length, key_length = query.size(-2), key.size(-2)
        causal_mask = self.bias[:, :, key_length - query_length: key_length, :key_length]
        mask_value = torch.full([], torch.finfo(attn_weights.dtype).min)
        attn_weights = torch.where(causal_mask, attn_weights, mask_value)
        if attention_mask is not None:
            attn_weights = attn_weights + attention_mask
        attn_weights = nn.functional.softmax(attn_weights, dim=-1)
        out = torch.matmul(attn_weights, value).permute(0, 2, 1, 3).contiguous()
        return self.c_proj(out.view(out.size()[:-2] + (self.num_heads * self.head_dim,)))


class GPT2MLP(nn.Module):
    def __init__(self, inner, n_embd):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, inner)
        self.c_proj = nn.Linear(inner, n_embd)

    def forward(self, x):
        return self.c_proj(gelu_new(self.c_fc(x)))


class GPT2Block(nn.Module):
    def __init__(self, n_embd, n_head, n_positions):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd, eps=1e-5)
        self.attn = GPT2Attention(n_embd, n_head, n_positions)
        self.ln_2 = nn.LayerNorm(n_embd, eps=1e-5)
        self.mlp = GPT2MLP(4 * n_embd, n_embd)

    def forward(self, hidden_states, attention_mask=None):
        hidden_states = self.attn(self.ln_1(hidden_states), attention_mask) + hidden_states
        return hidden_states + self.mlp(self.ln_2(hidden_states))


def gpt2_block_params(b, prefix=""):
    return {**ln_params(b.ln_1, prefix + "ln_1."), **lin_params(b.attn.c_attn, prefix + "attn.c_attn."),
            **lin_params(b.attn.c_proj, prefix + "attn.c_proj."), **ln_params(b.ln_2, prefix + "ln_2."),
            **lin_params(b.mlp.c_fc, prefix + "mlp.c_fc."), **lin_params(b.mlp.c_proj, prefix + "mlp.c_proj.")}


NPOS = 16
block = GPT2Block(W, HEADS, NPOS)
randomise(block, 0.2)
x = leaf(2, 6, W)
record("gpt2_block", gpt2_block_params(block), {"x": x}, block(x), sizes={"width": W, "heads": HEADS})


class GPT2LMHeadModel(nn.Module):
    def __init__(self, vocab, n_embd, n_head, n_layer, n_positions):
        super().__init__()
        self.wte = nn.Embedding(vocab, n_embd)
        self.wpe = nn.Embedding(n_positions, n_embd)
        self.h = nn.ModuleList([GPT2Block(n_embd, n_head, n_positions) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd, eps=1e-5)

    def forward(self, input_ids, attention_mask, labels):
        position_ids = torch.arange(input_ids.shape[1])[None, :]
        hidden = self.wte(input_ids) + self.wpe(position_ids)
        extended = (1.0 - attention_mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        for block in self.h:
            hidden = block(hidden, extended)
        logits = F.linear(self.ln_f(hidden), self.wte.weight)  # lm_head tied to wte
        shift_logits = logits[..., :-1, :].contiguous()
        shift_labels = labels[..., 1:].contiguous()
        loss = nn.CrossEntropyLoss()(shift_logits.view(-1, shift_logits.size(-1)), shift_labels.view(-1))
        return logits, loss


GVOCAB, GLAYERS = 40, 2
lm = GPT2LMHeadModel(GVOCAB, W, HEADS, GLAYERS, NPOS)
randomise(lm, 0.2)
ids = torch.tensor([[5, 9, 3, 17, 2, 8, 11], [7, 1, 30, 4, 0, 0, 0]])
mask = torch.tensor([[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0, 0]])
labels = ids.masked_fill(mask == 0, -100)
labels[0, 1] = -100  # an ignored prompt token
logits, loss = lm(ids, mask, labels)
params = {"transformer.wte.weight": lm.wte.weight, "transformer.wpe.weight": lm.wpe.weight}
for i, b in enumerate(lm.h):
    params.update(gpt2_block_params(b, f"transformer.h.{i}."))
params.update(ln_params(lm.ln_f, "transformer.ln_f."))
record("gpt2_lm", params, {"ids": ids, "mask": mask, "labels": labels}, logits, loss=loss,
       sizes={"vocab": GVOCAB, "width": W, "heads": HEADS, "layers": GLAYERS, "positions": NPOS})


# ---- cross-attention from a wider context (torch's own multi-head attention with kdim = vdim = 24) ----------------
def mapped_leaf(*shape, std=0.2):
    return (torch.randn(*shape) * std).requires_grad_()


cross = {"q.weight": mapped_leaf(W, W), "q.bias": mapped_leaf(W), "kv.weight": mapped_leaf(2 * W, ENC), "kv.bias": mapped_leaf(2 * W),
         "proj.weight": mapped_leaf(W, W), "proj.bias": mapped_leaf(W)}
x = leaf(2, 3, W)
context = leaf(2, 7, ENC)
context_mask = torch.tensor([[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0, 0]])
out, _ = F.multi_head_attention_forward(
    query=x.transpose(0, 1), key=context.transpose(0, 1), value=context.transpose(0, 1), embed_dim_to_check=W, num_heads=HEADS,
    in_proj_weight=None, in_proj_bias=torch.cat([cross["q.bias"], cross["kv.bias"]]), bias_k=None, bias_v=None, add_zero_attn=False,
    dropout_p=0.0, out_proj_weight=cross["proj.weight"], out_proj_bias=cross["proj.bias"], training=False,
    key_padding_mask=context_mask == 0, need_weights=False, use_separate_proj_weight=True, q_proj_weight=cross["q.weight"],
    k_proj_weight=cross["kv.weight"][:W], v_proj_weight=cross["kv.weight"][W:])
record("cross_attn", cross, {"x": x, "context": context, "context_mask": context_mask}, out.transpose(0, 1),
       sizes={"width": W, "heads": HEADS, "context_width": ENC})


# ---- interpolated position embeddings (timm resample_abs_pos_embed: bicubic 2D, trilinear 3D) --------------------
pos = leaf(1, 1 + 2 * 3 * 2, W)
grid = pos[:, 1:].reshape(1, 2, 3, 2, W).permute(0, 4, 1, 2, 3)
resized = F.interpolate(grid, size=(3, 4, 4), mode="trilinear", align_corners=False).permute(0, 2, 3, 4, 1).reshape(1, -1, W)
record("pos_interp_3d", {}, {"pos": pos}, torch.cat([pos[:, :1], resized], 1), sizes={"from": [2, 3, 2], "to": [3, 4, 4]})
pos = leaf(1, 1 + 3 * 3, W)
grid = pos[:, 1:].reshape(1, 3, 3, W).permute(0, 3, 1, 2)
resized = F.interpolate(grid, size=(5, 4), mode="bicubic", align_corners=False).permute(0, 2, 3, 1).reshape(1, -1, W)
record("pos_interp_2d", {}, {"pos": pos}, torch.cat([pos[:, :1], resized], 1), sizes={"from": [3, 3], "to": [5, 4]})


# ---- write ---------------------------------------------------------------------------------------------------------
here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
header, blobs, offset = {}, [], 0
for name in sorted(tensors):
    t = tensors[name].contiguous()
    dtype = {torch.float32: "F32", torch.int64: "I64"}[t.dtype]
    raw = t.numpy().astype("<f4" if dtype == "F32" else "<i8").tobytes()
    header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
    blobs.append(raw)
    offset += len(raw)
head = json.dumps(header, separators=(",", ":")).encode()
head += b" " * ((8 - len(head) % 8) % 8)
with open(os.path.join(here, "blocks_golden.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(head)))
    f.write(head)
    for raw in blobs:
        f.write(raw)
with open(os.path.join(here, "blocks_golden.json"), "w") as f:
    json.dump({"torch": torch.__version__, "cases": meta}, f, indent=1, sort_keys=True)
print("wrote blocks_golden.safetensors (%d tensors, %d bytes) and blocks_golden.json" % (len(tensors), offset))


# ---- full-size key lists -------------------------------------------------------------------------------------------
# The reference classes above at the published sizes. Building all 39 EVA blocks would take 4 GB, so one module of each
# distinct layer kind is built at full width and its parameter names and shapes are repeated over the layer indices
# (every layer of a kind is identical). Parameters only: LAVIS' persistent buffer bert.embeddings.position_ids and
# GPT-2's attn.bias causal-mask buffer are not weights, and GPT-2's lm_head.weight is tied to transformer.wte.weight.
def shapes(module, prefix=""):
    return {prefix + n: list(p.shape) for n, p in module.named_parameters()}


def summary(keys):
    return {"keys": keys, "parameters": sum(math.prod(s) for s in keys.values())}


with torch.no_grad():
    keys = {"cls_token": [1, 1, 1408], "pos_embed": [1, 16 * 16 + 1, 1408]}
    keys.update(shapes(nn.Conv2d(3, 1408, 14, stride=14), "patch_embed.proj."))
    block = shapes(EvaBlock(1408, 16, int(1408 * 4.3637), None))
    for i in range(39):
        keys.update({f"blocks.{i}.{n}": s for n, s in block.items()})
    eva_vit_g = summary(keys)
    del block

    keys = {"query_tokens": [1, 32, 768]}
    keys.update({"bert.embeddings.word_embeddings.weight": [30522, 768], "bert.embeddings.position_embeddings.weight": [512, 768],
                 "bert.embeddings.LayerNorm.weight": [768], "bert.embeddings.LayerNorm.bias": [768]})
    with_cross = shapes(BertLayer(768, 12, 3072, cross_width=1408, query_ffn=True))
    without_cross = shapes(BertLayer(768, 12, 3072, query_ffn=True))
    for i in range(12):
        keys.update({f"bert.encoder.layer.{i}.{n}": s for n, s in (with_cross if i % 2 == 0 else without_cross).items()})
    qformer = summary(keys)

    keys = {"transformer.wte.weight": [50257, 768], "transformer.wpe.weight": [1024, 768],
            "transformer.ln_f.weight": [768], "transformer.ln_f.bias": [768]}
    block = shapes(GPT2Block(768, 12, 1024))
    for i in range(12):
        keys.update({f"transformer.h.{i}.{n}": s for n, s in block.items()})
    gpt2 = summary(keys)

with open(os.path.join(here, "blocks_keys.json"), "w") as f:
    json.dump({"eva_vit_g": eva_vit_g, "qformer_blip2": qformer, "gpt2_small": gpt2}, f, indent=0, sort_keys=True)
print("wrote blocks_keys.json: EVA ViT-g %d, Q-Former %d, GPT-2 %d parameters" % (eva_vit_g["parameters"], qformer["parameters"], gpt2["parameters"]))
