"""Layout parity: for every weight layout MedVlp reads, a tiny checkpoint in the source's OWN names and formats, written
by a torch module built after the released code (never after MedVlp's), plus its inputs and torch's outputs.

  lavis_blip2.pth / .safetensors   LAVIS Blip2Qformer (blip2_models/blip2.py, blip2_qformer.py, Qformer.py, eva_vit.py):
        visual_encoder (EVA ViT: patch_embed.proj, cls_token, pos_embed, blocks.N.{norm1, attn.qkv (no bias), attn.q_bias,
        attn.v_bias, attn.proj, norm2, mlp.fc1, mlp.fc2}, LayerNorm eps 1e-6, no final norm, mlp hidden
        int(width * 4.3637)), ln_vision (LayerNorm eps 1e-5), Qformer (BertLMHeadModel: bert.embeddings with the
        position_ids buffer, bert.encoder.layer.N with crossattention every 2nd layer and intermediate_query /
        output_query, cls.predictions.* with the decoder tied to the word embeddings), query_tokens, vision_proj,
        text_proj, itm_head, temp. As LAVIS builds it with precision="fp16", the EVA's Linear/Conv2d weights and biases
        are stored in float16 (convert_weights_to_fp16); everything else float32. The .pth is what LAVIS saves,
        {"model": state_dict}; the .safetensors holds the flat state dict.
        Outputs: image_embeds = ln_vision(visual_encoder(image)) and the query output of
        Qformer.bert(query_embeds=query_tokens, encoder_hidden_states=image_embeds) (forward run in float32 on the
        float16-rounded weights, which is what a float32 load of the file computes).
  hf_blip2.bin / .safetensors      Hugging Face Blip2ForConditionalGeneration (modeling_blip_2.py) minus its language
        model: vision_model (embeddings.{class_embedding, patch_embedding, position_embedding}, encoder.layers.N.
        {layer_norm1, self_attn.{qkv, q_bias, v_bias, projection}, layer_norm2, mlp.fc1/fc2}, post_layernorm; eps 1e-6),
        query_tokens, qformer (layernorm, encoder.layer.N.{attention.attention, attention.output, crossattention.*,
        intermediate_query, output_query}; no word/position embeddings and no text feed-forward), language_projection.
        Outputs: vision_model's last_hidden_state (post_layernorm applied) and the Q-Former's last_hidden_state.
  gpt2_lm.bin                      Hugging Face GPT2LMHeadModel.state_dict() (modeling_gpt2.py): transformer.* with the
        attn.bias / attn.masked_bias buffers, Conv1D weights [in, out], lm_head.weight tied to transformer.wte.weight.
  gpt2_lm.safetensors              the same weights as the released gpt2 model.safetensors holds them: GPT2Model names
        (no "transformer." prefix), no lm_head (tied), no buffers.
        Output: logits of GPT2LMHeadModel(input_ids, attention_mask) (gelu_new, finfo.min mask, right padding).
  resnet_tv.pth / .safetensors     torchvision 0.14's own ResNet and Bottleneck (built through ResNet._make_layer; only
        the widths made small: torchvision hard-codes 64 .. 512), with BatchNorm running statistics and fc; the .pth
        with DataParallel's "module." prefix (as LVM-Med's ResNet-50 is released), the .safetensors without.
        Output: eval-mode logits.
  timm_vit.pth / .safetensors      timm VisionTransformer (vision_transformer.py, class token, global_pool="token"):
        patch_embed.proj, cls_token, pos_embed, blocks.N.{norm1, attn.qkv (bias), attn.proj, norm2, mlp.fc1, mlp.fc2},
        norm, head; LayerNorm eps 1e-6, exact GELU. Output: logits (head of the normed class token) and the normed tokens.

Run: /usr/bin/python3 tests/golden/make_layout_parity_golden.py   (python3-torch 1.13, python3-torchvision 0.14)
Writes tests/golden/data/weights/parity/*.
"""
import json
import math
import os
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision.models.resnet as tvr

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "weights", "parity")
os.makedirs(OUT, exist_ok=True)
torch.manual_seed(20261202)
golden = {}


def write_safetensors(path, tensors, metadata=None):
    """The safetensors format: u64 header length, JSON header, raw little-endian data (the `safetensors` package is not in Debian)."""
    names = sorted(tensors)
    header, blobs, offset = {}, [], 0
    dt = {torch.float32: "F32", torch.float16: "F16", torch.int64: "I64", torch.bool: "BOOL", torch.uint8: "U8"}
    for n in names:
        raw = tensors[n].detach().contiguous().numpy().tobytes()
        header[n] = {"dtype": dt[tensors[n].dtype], "shape": list(tensors[n].shape), "data_offsets": [offset, offset + len(raw)]}
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


def randomize(module, scale=0.1):
    with torch.no_grad():
        for n, p in module.named_parameters():
            is_norm_weight = n.endswith(".weight") and p.ndim == 1 and any(s in n for s in ("LayerNorm", "norm", "ln_", "layernorm", "bn"))
            p.copy_(1 + scale * torch.randn_like(p) if is_norm_weight else scale * torch.randn_like(p))


def flat(t):
    return t.detach().float().flatten().tolist()


# ================================================================================ EVA ViT (LAVIS eva_vit.py)
class EvaAttention(nn.Module):
    def __init__(s, dim, heads):
        super().__init__()
        s.heads = heads
        s.scale = (dim // heads) ** -0.5
        s.qkv = nn.Linear(dim, dim * 3, bias=False)
        s.q_bias = nn.Parameter(torch.zeros(dim))
        s.v_bias = nn.Parameter(torch.zeros(dim))
        s.proj = nn.Linear(dim, dim)

    def forward(s, x):
        b, n, c = x.shape
        bias = torch.cat((s.q_bias, torch.zeros_like(s.v_bias), s.v_bias))
        qkv = F.linear(x, s.qkv.weight, bias).reshape(b, n, 3, s.heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * s.scale, qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)).softmax(-1)
        return s.proj((attn @ v).transpose(1, 2).reshape(b, n, -1))


class EvaMlp(nn.Module):
    def __init__(s, dim, hidden):
        super().__init__()
        s.fc1 = nn.Linear(dim, hidden)
        s.act = nn.GELU()
        s.fc2 = nn.Linear(hidden, dim)

    def forward(s, x):
        return s.fc2(s.act(s.fc1(x)))


class EvaBlock(nn.Module):
    def __init__(s, dim, heads, mlp_ratio):
        super().__init__()
        s.norm1 = nn.LayerNorm(dim, eps=1e-6)
        s.attn = EvaAttention(dim, heads)
        s.norm2 = nn.LayerNorm(dim, eps=1e-6)
        s.mlp = EvaMlp(dim, int(dim * mlp_ratio))

    def forward(s, x):
        x = x + s.attn(s.norm1(x))
        return x + s.mlp(s.norm2(x))


class EvaPatchEmbed(nn.Module):
    def __init__(s, patch, dim):
        super().__init__()
        s.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)

    def forward(s, x):
        return s.proj(x).flatten(2).transpose(1, 2)


class EvaVisionTransformer(nn.Module):
    """eva_vit.VisionTransformer as create_eva_vit_g builds it (qkv_bias=True, use_mean_pooling=False, no norm/head)."""

    def __init__(s, img, patch, dim, depth, heads, mlp_ratio):
        super().__init__()
        s.patch_embed = EvaPatchEmbed(patch, dim)
        s.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        s.pos_embed = nn.Parameter(torch.zeros(1, (img // patch) ** 2 + 1, dim))
        s.blocks = nn.ModuleList(EvaBlock(dim, heads, mlp_ratio) for _ in range(depth))

    def forward(s, x):
        x = s.patch_embed(x)
        x = torch.cat((s.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + s.pos_embed
        for blk in s.blocks:
            x = blk(x)
        return x


# ========================================================================= Q-Former (LAVIS blip2_models/Qformer.py)
class LavisEmbeddings(nn.Module):
    def __init__(s, c):
        super().__init__()
        s.word_embeddings = nn.Embedding(c["vocab"], c["hidden"], padding_idx=0)
        s.position_embeddings = nn.Embedding(c["positions"], c["hidden"])
        s.LayerNorm = nn.LayerNorm(c["hidden"], eps=1e-12)
        s.dropout = nn.Dropout(0.1)
        s.register_buffer("position_ids", torch.arange(c["positions"]).expand((1, -1)))

    def forward(s, query_embeds):
        return s.dropout(s.LayerNorm(query_embeds))


class SelfAttention(nn.Module):
    """LAVIS BertSelfAttention and Hugging Face Blip2QFormerMultiHeadAttention (same maths)."""

    def __init__(s, c, cross):
        super().__init__()
        h, kv = c["hidden"], (c["encoder_width"] if cross else c["hidden"])
        s.heads = c["heads"]
        s.query, s.key, s.value = nn.Linear(h, h), nn.Linear(kv, h), nn.Linear(kv, h)

    def split(s, x):
        return x.view(*x.shape[:-1], s.heads, -1).permute(0, 2, 1, 3)

    def forward(s, x, mask, enc=None, enc_mask=None):
        kv = x if enc is None else enc
        q, k, v = s.split(s.query(x)), s.split(s.key(kv)), s.split(s.value(kv))
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + (mask if enc is None else enc_mask)
        ctx = (scores.softmax(-1) @ v).permute(0, 2, 1, 3).contiguous()
        return ctx.view(*ctx.shape[:-2], -1)


class DenseNorm(nn.Module):
    """BertSelfOutput / BertOutput: dense, dropout, LayerNorm(x + residual)."""

    def __init__(s, n_in, h):
        super().__init__()
        s.dense = nn.Linear(n_in, h)
        s.LayerNorm = nn.LayerNorm(h, eps=1e-12)
        s.dropout = nn.Dropout(0.1)

    def forward(s, x, residual):
        return s.LayerNorm(s.dropout(s.dense(x)) + residual)


class Intermediate(nn.Module):
    def __init__(s, h, inter):
        super().__init__()
        s.dense = nn.Linear(h, inter)

    def forward(s, x):
        return F.gelu(s.dense(x))


class AttentionBlock(nn.Module):
    """LAVIS BertAttention (self, output) or Hugging Face Blip2QFormerAttention (attention, output)."""

    def __init__(s, c, cross, hf):
        super().__init__()
        s.hf = hf
        setattr(s, "attention" if hf else "self", SelfAttention(c, cross))
        s.output = DenseNorm(c["hidden"], c["hidden"])

    def forward(s, x, mask, enc=None, enc_mask=None):
        inner = s.attention if s.hf else s.self
        return s.output(inner(x, mask, enc, enc_mask), x)


class QFormerLayer(nn.Module):
    def __init__(s, c, index, hf):
        super().__init__()
        s.attention = AttentionBlock(c, False, hf)
        s.has_cross = index % c["cross_freq"] == 0
        if s.has_cross:
            s.crossattention = AttentionBlock(c, True, hf)
        if not hf:  # LAVIS keeps the text feed-forward; Hugging Face's Blip2QFormerLayer has only the query one
            s.intermediate = Intermediate(c["hidden"], c["inter"])
            s.output = DenseNorm(c["inter"], c["hidden"])
        s.intermediate_query = Intermediate(c["hidden"], c["inter"])
        s.output_query = DenseNorm(c["inter"], c["hidden"])

    def forward(s, h, mask, enc, enc_mask, query_length):
        a = s.attention(h, mask)
        q = a[:, :query_length, :]
        if s.has_cross:
            q = s.crossattention(q, mask, enc, enc_mask)
        return s.output_query(s.intermediate_query(q), q)  # queries only: no text tokens here


class Encoder(nn.Module):
    def __init__(s, c, hf):
        super().__init__()
        s.layer = nn.ModuleList(QFormerLayer(c, i, hf) for i in range(c["layers"]))

    def forward(s, h, mask, enc, enc_mask, query_length):
        for layer in s.layer:
            h = layer(h, mask, enc, enc_mask, query_length)
        return h


def extended(mask):
    return (1.0 - mask[:, None, None, :].float()) * -10000.0


class LavisBert(nn.Module):
    def __init__(s, c):
        super().__init__()
        s.embeddings = LavisEmbeddings(c)
        s.encoder = Encoder(c, False)

    def forward(s, query_embeds, encoder_hidden_states):
        b, q = query_embeds.shape[:2]
        enc_mask = torch.ones(encoder_hidden_states.shape[:2], dtype=torch.long)
        return s.encoder(s.embeddings(query_embeds), extended(torch.ones(b, q)), encoder_hidden_states, extended(enc_mask), q)


class MlmHead(nn.Module):
    """BertOnlyMLMHead: cls.predictions.{transform.dense, transform.LayerNorm, decoder (tied), bias}."""

    def __init__(s, c, word_embeddings):
        super().__init__()
        s.predictions = nn.Module()
        s.predictions.transform = nn.Module()
        s.predictions.transform.dense = nn.Linear(c["hidden"], c["hidden"])
        s.predictions.transform.LayerNorm = nn.LayerNorm(c["hidden"], eps=1e-12)
        s.predictions.decoder = nn.Linear(c["hidden"], c["vocab"])
        s.predictions.bias = nn.Parameter(torch.zeros(c["vocab"]))
        s.predictions.decoder.bias = s.predictions.bias
        s.predictions.decoder.weight = word_embeddings.weight


class LavisBlip2Qformer(nn.Module):
    """blip2_qformer.Blip2Qformer's parameters: visual_encoder, ln_vision, Qformer (BertLMHeadModel), query_tokens,
    vision_proj, text_proj, itm_head, temp."""

    def __init__(s, v, c, embed):
        super().__init__()
        s.visual_encoder = EvaVisionTransformer(**v)
        s.ln_vision = nn.LayerNorm(v["dim"])  # blip2.LayerNorm: torch's default eps 1e-5
        s.Qformer = nn.Module()
        s.Qformer.bert = LavisBert(c)
        s.Qformer.cls = MlmHead(c, s.Qformer.bert.embeddings.word_embeddings)
        s.query_tokens = nn.Parameter(torch.zeros(1, c["queries"], c["hidden"]))
        s.vision_proj = nn.Linear(c["hidden"], embed)
        s.text_proj = nn.Linear(c["hidden"], embed)
        s.itm_head = nn.Linear(c["hidden"], 2)
        s.temp = nn.Parameter(0.07 * torch.ones([]))


vcfg = dict(img=28, patch=7, dim=32, depth=2, heads=4, mlp_ratio=4.3637)  # mlp hidden int(32 * 4.3637) = 139
qcfg = dict(vocab=60, hidden=32, layers=3, heads=4, inter=48, positions=24, encoder_width=32, cross_freq=2, queries=4)
lavis = LavisBlip2Qformer(vcfg, qcfg, 16).eval()
randomize(lavis)
# LAVIS builds the EVA with precision="fp16": its Conv2d and Linear weights and biases become float16.
for m in lavis.visual_encoder.modules():
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        m.weight.data = m.weight.data.half()
        if m.bias is not None:
            m.bias.data = m.bias.data.half()
sd = {k: v.clone() for k, v in lavis.state_dict().items()}
fp16_names = sorted(k for k, v in sd.items() if v.dtype == torch.float16)
torch.save({"model": sd}, os.path.join(OUT, "lavis_blip2.pth"))
write_safetensors(os.path.join(OUT, "lavis_blip2.safetensors"), sd, {"format": "pt"})
lavis.float()
image = torch.randn(2, 3, vcfg["img"], vcfg["img"])
with torch.no_grad():
    image_embeds = lavis.ln_vision(lavis.visual_encoder(image))
    query = lavis.Qformer.bert(lavis.query_tokens.expand(2, -1, -1), image_embeds)
golden["lavis_blip2"] = {"vision": vcfg, "qformer": qcfg, "image": flat(image), "image_shape": list(image.shape),
                         "image_embeds": flat(image_embeds), "image_embeds_shape": list(image_embeds.shape),
                         "query_output": flat(query), "query_shape": list(query.shape), "fp16": fp16_names,
                         "keys": sorted(sd)}


# ============================================================ Hugging Face BLIP-2 (modeling_blip_2.py), no language model
class HfVisionEmbeddings(nn.Module):
    def __init__(s, v):
        super().__init__()
        s.class_embedding = nn.Parameter(torch.randn(1, 1, v["dim"]))
        s.patch_embedding = nn.Conv2d(3, v["dim"], kernel_size=v["patch"], stride=v["patch"])
        s.position_embedding = nn.Parameter(torch.randn(1, (v["img"] // v["patch"]) ** 2 + 1, v["dim"]))

    def forward(s, x):
        p = s.patch_embedding(x).flatten(2).transpose(1, 2)
        e = torch.cat([s.class_embedding.expand(x.shape[0], 1, -1), p], dim=1)
        return e + s.position_embedding[:, : e.size(1), :]


class HfAttention(nn.Module):
    def __init__(s, dim, heads):
        super().__init__()
        s.heads = heads
        s.scale = (dim // heads) ** -0.5
        s.qkv = nn.Linear(dim, 3 * dim, bias=False)
        s.q_bias = nn.Parameter(torch.zeros(dim))
        s.v_bias = nn.Parameter(torch.zeros(dim))
        s.projection = nn.Linear(dim, dim)

    def forward(s, x):
        b, t, d = x.shape
        bias = torch.cat((s.q_bias, torch.zeros_like(s.v_bias), s.v_bias))
        qkv = F.linear(x, s.qkv.weight, bias).reshape(b, t, 3, s.heads, d // s.heads).permute(2, 0, 3, 1, 4)
        probs = (qkv[0] @ qkv[1].transpose(-1, -2) * s.scale).softmax(-1)
        return s.projection((probs @ qkv[2]).permute(0, 2, 1, 3).reshape(b, t, d))


class HfEncoderLayer(nn.Module):
    def __init__(s, v, eps):
        super().__init__()
        s.self_attn = HfAttention(v["dim"], v["heads"])
        s.layer_norm1 = nn.LayerNorm(v["dim"], eps=eps)
        s.mlp = EvaMlp(v["dim"], int(v["dim"] * v["mlp_ratio"]))
        s.layer_norm2 = nn.LayerNorm(v["dim"], eps=eps)

    def forward(s, x):
        x = x + s.self_attn(s.layer_norm1(x))
        return x + s.mlp(s.layer_norm2(x))


class HfVisionModel(nn.Module):
    def __init__(s, v, eps=1e-6):  # Blip2VisionConfig.layer_norm_eps
        super().__init__()
        s.embeddings = HfVisionEmbeddings(v)
        s.encoder = nn.Module()
        s.encoder.layers = nn.ModuleList(HfEncoderLayer(v, eps) for _ in range(v["depth"]))
        s.post_layernorm = nn.LayerNorm(v["dim"], eps=eps)

    def forward(s, x):
        x = s.embeddings(x)
        for layer in s.encoder.layers:
            x = layer(x)
        return s.post_layernorm(x)


class HfQFormerModel(nn.Module):
    def __init__(s, c):
        super().__init__()
        s.layernorm = nn.LayerNorm(c["hidden"], eps=1e-12)
        s.dropout = nn.Dropout(0.1)
        s.encoder = Encoder(c, True)

    def forward(s, query_embeds, encoder_hidden_states):
        b, q = query_embeds.shape[:2]
        enc_mask = torch.ones(encoder_hidden_states.shape[:2], dtype=torch.long)
        return s.encoder(s.dropout(s.layernorm(query_embeds)), extended(torch.ones(b, q)), encoder_hidden_states, extended(enc_mask), q)


class HfBlip2(nn.Module):
    def __init__(s, v, c, text_width):
        super().__init__()
        s.vision_model = HfVisionModel(v)
        s.query_tokens = nn.Parameter(torch.zeros(1, c["queries"], c["hidden"]))
        s.qformer = HfQFormerModel(c)
        s.language_projection = nn.Linear(c["hidden"], text_width)


hf = HfBlip2(vcfg, qcfg, 24).eval()
randomize(hf)
sd = {k: v.clone() for k, v in hf.state_dict().items()}
torch.save(sd, os.path.join(OUT, "hf_blip2.bin"))
write_safetensors(os.path.join(OUT, "hf_blip2.safetensors"), sd, {"format": "pt"})
with torch.no_grad():
    vision = hf.vision_model(image)
    query = hf.qformer(hf.query_tokens.expand(2, -1, -1), vision)
golden["hf_blip2"] = {"image_embeds": flat(vision), "query_output": flat(query), "keys": sorted(sd)}


# ============================================================================== GPT-2 (transformers modeling_gpt2.py)
def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class Conv1D(nn.Module):
    def __init__(s, nf, nx):
        super().__init__()
        s.weight = nn.Parameter(torch.empty(nx, nf))
        s.bias = nn.Parameter(torch.zeros(nf))

    def forward(s, x):
        return torch.addmm(s.bias, x.reshape(-1, x.shape[-1]), s.weight).view(*x.shape[:-1], -1)


class GPT2Attention(nn.Module):
    def __init__(s, c):
        super().__init__()
        n = c["positions"]
        s.register_buffer("bias", torch.tril(torch.ones((n, n), dtype=torch.bool)).view(1, 1, n, n))
        s.register_buffer("masked_bias", torch.tensor(-1e4))
        s.heads = c["heads"]
        s.c_attn = Conv1D(3 * c["embd"], c["embd"])
        s.c_proj = Conv1D(c["embd"], c["embd"])

    def forward(s, x, mask):
        b, t, e = x.shape
        q, k, v = s.c_attn(x).split(e, dim=2)
        split = lambda y: y.view(b, t, s.heads, -1).permute(0, 2, 1, 3)
        q, k, v = split(q), split(k), split(v)
        w = q @ k.transpose(-1, -2) / (v.size(-1) ** 0.5)
        causal = s.bias[:, :, :t, :t]
        w = torch.where(causal, w, torch.tensor(torch.finfo(w.dtype).min, dtype=w.dtype)) + mask
        ctx = (w.softmax(-1) @ v).permute(0, 2, 1, 3).contiguous().view(b, t, e)
        return s.c_proj(ctx)


class GPT2MLP(nn.Module):
    def __init__(s, c):
        super().__init__()
        s.c_fc = Conv1D(4 * c["embd"], c["embd"])
        s.c_proj = Conv1D(c["embd"], 4 * c["embd"])

    def forward(s, x):
        return s.c_proj(gelu_new(s.c_fc(x)))


class GPT2Block(nn.Module):
    def __init__(s, c):
        super().__init__()
        s.ln_1 = nn.LayerNorm(c["embd"], eps=1e-5)
        s.attn = GPT2Attention(c)
        s.ln_2 = nn.LayerNorm(c["embd"], eps=1e-5)
        s.mlp = GPT2MLP(c)

    def forward(s, x, mask):
        x = x + s.attn(s.ln_1(x), mask)
        return x + s.mlp(s.ln_2(x))


class GPT2Model(nn.Module):
    def __init__(s, c):
        super().__init__()
        s.wte = nn.Embedding(c["vocab"], c["embd"])
        s.wpe = nn.Embedding(c["positions"], c["embd"])
        s.h = nn.ModuleList(GPT2Block(c) for _ in range(c["layers"]))
        s.ln_f = nn.LayerNorm(c["embd"], eps=1e-5)

    def forward(s, ids, attention_mask):
        x = s.wte(ids) + s.wpe(torch.arange(ids.shape[1]).unsqueeze(0))
        mask = (1.0 - attention_mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        for block in s.h:
            x = block(x, mask)
        return s.ln_f(x)


class GPT2LMHeadModel(nn.Module):
    def __init__(s, c):
        super().__init__()
        s.transformer = GPT2Model(c)
        s.lm_head = nn.Linear(c["embd"], c["vocab"], bias=False)
        s.lm_head.weight = s.transformer.wte.weight  # tie_weights()

    def forward(s, ids, attention_mask):
        return s.lm_head(s.transformer(ids, attention_mask))


gcfg = dict(vocab=50, positions=16, embd=24, layers=2, heads=4)
gpt = GPT2LMHeadModel(gcfg).eval()
randomize(gpt)
sd = gpt.state_dict()  # lm_head.weight and transformer.wte.weight share one storage, as in a released .bin
torch.save(sd, os.path.join(OUT, "gpt2_lm.bin"))
released = {k[len("transformer."):]: v.clone() for k, v in sd.items()
            if k.startswith("transformer.") and not k.endswith(".attn.bias") and not k.endswith(".attn.masked_bias")}
write_safetensors(os.path.join(OUT, "gpt2_lm.safetensors"), released, {"format": "pt"})
ids = torch.tensor([[3, 17, 42, 8, 49, 0, 11], [5, 23, 1, 30, 0, 0, 0]])
mask = torch.tensor([[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0, 0]])
with torch.no_grad():
    logits = gpt(ids, mask)
golden["gpt2"] = {"config": gcfg, "ids": ids.tolist(), "mask": mask.tolist(), "logits": flat(logits),
                  "shape": list(logits.shape), "bin_keys": sorted(sd), "safetensors_keys": sorted(released)}


# ================================================================================= torchvision ResNet (Bottleneck)
def torchvision_resnet(stem, planes, blocks, classes):
    """torchvision.models.resnet.ResNet.__init__ step by step with its own _make_layer and Bottleneck; only the stem
    width (64) and the stage planes (64, 128, 256, 512) are smaller."""
    m = tvr.ResNet.__new__(tvr.ResNet)
    nn.Module.__init__(m)
    m._norm_layer = nn.BatchNorm2d
    m.inplanes, m.dilation, m.groups, m.base_width = stem, 1, 1, 64
    m.conv1 = nn.Conv2d(3, stem, kernel_size=7, stride=2, padding=3, bias=False)
    m.bn1 = nn.BatchNorm2d(stem)
    m.relu = nn.ReLU(inplace=True)
    m.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
    m.layer1 = m._make_layer(tvr.Bottleneck, planes[0], blocks[0])
    m.layer2 = m._make_layer(tvr.Bottleneck, planes[1], blocks[1], stride=2)
    m.layer3 = m._make_layer(tvr.Bottleneck, planes[2], blocks[2], stride=2)
    m.layer4 = m._make_layer(tvr.Bottleneck, planes[3], blocks[3], stride=2)
    m.avgpool = nn.AdaptiveAvgPool2d((1, 1))
    m.fc = nn.Linear(planes[3] * tvr.Bottleneck.expansion, classes)
    return m


rcfg = dict(stem=8, planes=[4, 8, 16, 32], blocks=[2, 1, 1, 2], classes=5)
resnet = torchvision_resnet(**rcfg)
with torch.no_grad():
    for p in resnet.parameters():
        p.copy_(torch.randn_like(p) * 0.3)
    for n, b in resnet.named_buffers():
        if n.endswith("running_mean"):
            b.copy_(torch.randn_like(b) * 0.2)
        elif n.endswith("running_var"):
            b.copy_(torch.rand_like(b) + 0.5)
        elif n.endswith("num_batches_tracked"):
            b.fill_(1234)
resnet.eval()
sd = {k: v.clone() for k, v in resnet.state_dict().items()}
torch.save({"module." + k: v for k, v in sd.items()}, os.path.join(OUT, "resnet_tv.pth"))
write_safetensors(os.path.join(OUT, "resnet_tv.safetensors"), sd, {"format": "pt"})
x = torch.randn(2, 3, 40, 40)
with torch.no_grad():
    logits = resnet(x)
golden["resnet"] = {"config": rcfg, "x": flat(x), "x_shape": list(x.shape), "logits": flat(logits), "keys": sorted(sd)}


# =================================================================================== timm VisionTransformer (ViT)
class TimmAttention(nn.Module):
    def __init__(s, dim, heads):
        super().__init__()
        s.heads = heads
        s.scale = (dim // heads) ** -0.5
        s.qkv = nn.Linear(dim, dim * 3, bias=True)
        s.proj = nn.Linear(dim, dim)

    def forward(s, x):
        b, n, c = x.shape
        qkv = s.qkv(x).reshape(b, n, 3, s.heads, c // s.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = ((q * s.scale) @ k.transpose(-2, -1)).softmax(-1)
        return s.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class TimmBlock(nn.Module):
    def __init__(s, dim, heads, mlp_ratio):
        super().__init__()
        s.norm1 = nn.LayerNorm(dim, eps=1e-6)
        s.attn = TimmAttention(dim, heads)
        s.norm2 = nn.LayerNorm(dim, eps=1e-6)
        s.mlp = EvaMlp(dim, int(dim * mlp_ratio))  # timm Mlp: fc1, act (GELU), drop, fc2

    def forward(s, x):
        x = x + s.attn(s.norm1(x))
        return x + s.mlp(s.norm2(x))


class TimmVisionTransformer(nn.Module):
    def __init__(s, img, patch, dim, depth, heads, mlp_ratio, classes):
        super().__init__()
        s.patch_embed = EvaPatchEmbed(patch, dim)
        s.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        s.pos_embed = nn.Parameter(torch.randn(1, (img // patch) ** 2 + 1, dim) * 0.02)
        s.blocks = nn.Sequential(*[TimmBlock(dim, heads, mlp_ratio) for _ in range(depth)])
        s.norm = nn.LayerNorm(dim, eps=1e-6)
        s.head = nn.Linear(dim, classes)

    def forward_features(s, x):
        x = s.patch_embed(x)
        x = torch.cat((s.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + s.pos_embed
        return s.norm(s.blocks(x))

    def forward(s, x):
        return s.head(s.forward_features(x)[:, 0])


tcfg = dict(img=32, patch=8, dim=32, depth=2, heads=4, mlp_ratio=4.0, classes=5)
vit = TimmVisionTransformer(**tcfg).eval()
randomize(vit)
sd = {k: v.clone() for k, v in vit.state_dict().items()}
torch.save(sd, os.path.join(OUT, "timm_vit.pth"))
write_safetensors(os.path.join(OUT, "timm_vit.safetensors"), sd, {"format": "pt"})
x = torch.randn(2, 3, 32, 32)
with torch.no_grad():
    tokens = vit.forward_features(x)
    logits = vit.head(tokens[:, 0])
golden["timm_vit"] = {"config": tcfg, "x": flat(x), "x_shape": list(x.shape), "tokens": flat(tokens),
                      "logits": flat(logits), "keys": sorted(sd)}

with open(os.path.join(OUT, "parity_golden.json"), "w") as f:
    json.dump(golden, f)
for name in sorted(os.listdir(OUT)):
    print(f"{name}: {os.path.getsize(os.path.join(OUT, name)):,} bytes")
