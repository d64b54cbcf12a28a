"""Golden values for MedVlp's MedBLIP (src/MedVlp/Architectures/MedBlip), from a PyTorch reference written after the
released code, never from MedVlp's code:

  * vision     Qybc/MedBLIP medblip/eva_vit.py: PatchEmbed (Conv3d, kernel = stride = patch) -> cls_token ->
               + pos_embed_3d -> EVA Blocks (qkv without bias + q_bias / v_bias, pre-norm eps 1e-6, exact GELU), then
               ln_vision (LayerNorm eps 1e-5) as modeling_medblip_biomedlm.py
  * Q-Former   LAVIS lavis/models/blip2_models/Qformer.py: BertEmbeddings (query_embeds only -> LayerNorm; text: word +
               position -> LayerNorm), BertLayer with crossattention every 2nd layer (query part only) and
               intermediate_query / output_query for the queries; text branch = the same layers on text alone with the
               padding mask (1 - mask) * -10000
  * ITC        modeling_medblip_biomedlm.py forward: vision_proj of the query outputs, text_proj / qa_proj of the text CLS,
               sim = max over queries of the dot products, / temp, cross-entropy with label smoothing 0.1 both ways, /2;
               ITC(report) + ITC(question + answer)
  * LM         inputs_embeds = [wte(prompt); proj(query outputs); wte(answer)], labels = prompt (padding -100, or all -100
               for "answer only"), -100 for the image tokens, answer (padding -100); Hugging Face GPT2LMHeadModel
               (tied lm_head, (1 - mask) * finfo.min, shifted cross-entropy). MedVlp's one deliberate change, written here
               too: position ids count real tokens only (cumsum(mask) - 1), as Hugging Face's generate numbers them.
  * greedy     [wte(prompt); proj(queries)] then the arg-max token appended, recomputing the whole sequence each step
               (no cache), 5 new tokens per volume.

The released code's Q-Former text branch runs with its word embeddings deleted and GPT-2 ids, which cannot run; this
reference keeps the Q-Former's own embeddings (the BLIP-2 way), as MedVlp does.
Writes data/medblip_golden.safetensors (keys param/<name>, input/<name>, output/<name>, grad/<name>) and
data/medblip_golden.json (sizes, the greedy tokens). Run: /usr/bin/python3 tests/golden/make_medblip_golden.py
"""
import json
import math
import os
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(14)
S = dict(input=16, patch=8, vw=16, vdepth=2, vheads=2, vmlp=32, qh=16, qlayers=3, qheads=2, qinter=24, queries=4,
         qvocab=30, qpos=20, lvocab=40, lw=16, llayers=2, lheads=2, lpos=64, embed=8)


class EvaAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))
        qkv = F.linear(x, self.qkv.weight, bias).reshape(B, N, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N, -1))


class EvaMlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class EvaBlock(nn.Module):
    def __init__(self, dim, heads, hidden):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = EvaAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = EvaMlp(dim, hidden)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed3d(nn.Module):
    def __init__(self, patch, dim):
        super().__init__()
        self.proj = nn.Conv3d(1, dim, kernel_size=patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class VisionEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        grid = S["input"] // S["patch"]
        self.patch_embed_3d = PatchEmbed3d(S["patch"], S["vw"])
        self.cls_token = nn.Parameter(torch.zeros(1, 1, S["vw"]))
        self.pos_embed_3d = nn.Parameter(torch.zeros(1, grid ** 3 + 1, S["vw"]))
        self.blocks = nn.ModuleList([EvaBlock(S["vw"], S["vheads"], S["vmlp"]) for _ in range(S["vdepth"])])

    def forward(self, x):
        x = self.patch_embed_3d(x)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + self.pos_embed_3d
        for blk in self.blocks:
            x = blk(x)
        return x


class BertSelfAttention(nn.Module):
    def __init__(self, hidden, heads, kv_width=None):
        super().__init__()
        self.heads, self.size = heads, hidden // heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(kv_width or hidden, hidden)
        self.value = nn.Linear(kv_width or hidden, hidden)

    def split(self, x):
        return x.view(x.shape[:-1] + (self.heads, self.size)).permute(0, 2, 1, 3)

    def forward(self, h, mask=None, enc=None, enc_mask=None):
        kv, m = (enc, enc_mask) if enc is not None else (h, mask)
        q, k, v = self.split(self.query(h)), self.split(self.key(kv)), self.split(self.value(kv))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.size)
        if m is not None:
            scores = scores + m
        ctx = (scores.softmax(-1) @ v).permute(0, 2, 1, 3).contiguous()
        return ctx.view(ctx.shape[:-2] + (self.heads * self.size,))


class BertSelfOutput(nn.Module):
    def __init__(self, in_size, hidden):
        super().__init__()
        self.dense = nn.Linear(in_size, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=1e-12)

    def forward(self, h, residual):
        return self.LayerNorm(self.dense(h) + residual)


class BertAttention(nn.Module):
    def __init__(self, hidden, heads, kv_width=None):
        super().__init__()
        self.self = BertSelfAttention(hidden, heads, kv_width)
        self.output = BertSelfOutput(hidden, hidden)

    def forward(self, h, mask=None, enc=None, enc_mask=None):
        return self.output(self.self(h, mask, enc, enc_mask), h)


class BertIntermediate(nn.Module):
    def __init__(self, hidden, inter):
        super().__init__()
        self.dense = nn.Linear(hidden, inter)

    def forward(self, x):
        return F.gelu(self.dense(x))


class QFormerLayer(nn.Module):
    def __init__(self, index):
        super().__init__()
        h, n, i = S["qh"], S["qheads"], S["qinter"]
        self.attention = BertAttention(h, n)
        self.has_cross = index % 2 == 0
        if self.has_cross:
            self.crossattention = BertAttention(h, n, S["vw"])
        self.intermediate = BertIntermediate(h, i)
        self.output = BertSelfOutput(i, h)
        self.intermediate_query = BertIntermediate(h, i)
        self.output_query = BertSelfOutput(i, h)

    def forward(self, h, mask, enc=None, query_length=0):
        a = self.attention(h, mask)
        if query_length > 0:
            if self.has_cross:
                a = self.crossattention(a, None, enc, None)  # image tokens all valid
            return self.output_query(self.intermediate_query(a), a)
        return self.output(self.intermediate(a), a)


class QFormerEmbeddings(nn.Module):
    def __init__(self):
        super().__init__()
        self.word_embeddings = nn.Embedding(S["qvocab"], S["qh"])
        self.position_embeddings = nn.Embedding(S["qpos"], S["qh"])
        self.LayerNorm = nn.LayerNorm(S["qh"], eps=1e-12)


class QFormerBert(nn.Module):
    def __init__(self):
        super().__init__()
        self.embeddings = QFormerEmbeddings()
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList([QFormerLayer(i) for i in range(S["qlayers"])])


class QFormer(nn.Module):
    def __init__(self):
        super().__init__()
        self.bert = QFormerBert()
        self.query_tokens = nn.Parameter(torch.randn(1, S["queries"], S["qh"]) * 0.02)

    def queries(self, image_embeds):
        h = self.bert.embeddings.LayerNorm(self.query_tokens.expand(image_embeds.shape[0], -1, -1))
        for layer in self.bert.encoder.layer:
            h = layer(h, None, image_embeds, query_length=S["queries"])
        return h

    def text(self, ids, mask):
        e = self.bert.embeddings
        h = e.LayerNorm(e.word_embeddings(ids) + e.position_embeddings(torch.arange(ids.shape[1])[None, :]))
        ext = (1.0 - mask[:, None, None, :].float()) * -10000.0
        for layer in self.bert.encoder.layer:
            h = layer(h, ext)
        return h


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class GPT2Attention(nn.Module):
    def __init__(self):
        super().__init__()
        n = S["lw"]
        self.heads, self.size = S["lheads"], n // S["lheads"]
        self.c_attn = nn.Linear(n, 3 * n)
        self.c_proj = nn.Linear(n, n)

    def split(self, x):
        return x.view(x.shape[:-1] + (self.heads, self.size)).permute(0, 2, 1, 3)

    def forward(self, h, mask):
        q, k, v = [self.split(t) for t in self.c_attn(h).split(S["lw"], dim=2)]
        w = q @ k.transpose(-1, -2) / math.sqrt(self.size)
        T = h.shape[1]
        causal = torch.tril(torch.ones(T, T, dtype=torch.bool))[None, None]
        w = torch.where(causal, w, torch.full([], torch.finfo(w.dtype).min)) + mask
        out = (w.softmax(-1) @ v).permute(0, 2, 1, 3).contiguous()
        return self.c_proj(out.view(out.shape[:-2] + (S["lw"],)))


class GPT2Block(nn.Module):
    def __init__(self):
        super().__init__()
        n = S["lw"]
        self.ln_1 = nn.LayerNorm(n, eps=1e-5)
        self.attn = GPT2Attention()
        self.ln_2 = nn.LayerNorm(n, eps=1e-5)
        self.mlp = nn.Module()
        self.mlp.c_fc = nn.Linear(n, 4 * n)
        self.mlp.c_proj = nn.Linear(4 * n, n)

    def forward(self, h, mask):
        h = h + self.attn(self.ln_1(h), mask)
        return h + self.mlp.c_proj(gelu_new(self.mlp.c_fc(self.ln_2(h))))


class GPT2Transformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(S["lvocab"], S["lw"])
        self.wpe = nn.Embedding(S["lpos"], S["lw"])
        self.h = nn.ModuleList([GPT2Block() for _ in range(S["llayers"])])
        self.ln_f = nn.LayerNorm(S["lw"], eps=1e-5)


class GPT2LMHeadModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.transformer = GPT2Transformer()

    def forward(self, embeds, mask, labels=None):
        t = self.transformer
        positions = (mask.cumsum(1) - 1).clamp(min=0)
        h = embeds + t.wpe(positions)
        ext = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        for block in t.h:
            h = block(h, ext)
        logits = F.linear(t.ln_f(h), t.wte.weight)
        if labels is None:
            return logits, None
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100)
        return logits, loss


class MedBLIP(nn.Module):
    def __init__(self):
        super().__init__()
        self.visual_encoder = VisionEncoder()
        self.ln_vision = nn.LayerNorm(S["vw"])
        self.Qformer = QFormer()
        self.vision_proj = nn.Linear(S["qh"], S["embed"])
        self.text_proj = nn.Linear(S["qh"], S["embed"])
        self.qa_proj = nn.Linear(S["qh"], S["embed"])
        self.proj = nn.Linear(S["qh"], S["lw"])
        self.lm_model = GPT2LMHeadModel()
        self.temp = nn.Parameter(0.07 * torch.ones([]))
        for name, p in self.visual_encoder.named_parameters():
            if "3d" not in name:
                p.requires_grad = False
        for p in self.lm_model.parameters():
            p.requires_grad = False

    def itc(self, image_feats, text_feat):
        sim_q2t = torch.matmul(image_feats.unsqueeze(1), text_feat.unsqueeze(-1)).squeeze(-1)
        sim_i2t = sim_q2t.max(-1)[0] / self.temp
        sim_t2q = torch.matmul(text_feat.unsqueeze(1).unsqueeze(1), image_feats.permute(0, 2, 1)).squeeze(2)
        sim_t2i = sim_t2q.max(-1)[0] / self.temp
        targets = torch.arange(image_feats.shape[0])
        return (F.cross_entropy(sim_i2t, targets, label_smoothing=0.1) + F.cross_entropy(sim_t2i, targets, label_smoothing=0.1)) / 2

    def forward(self, volumes, report, report_mask, qa, qa_mask, prompt, prompt_mask, answer, answer_mask, score_prompt=True):
        image_tokens = self.ln_vision(self.visual_encoder(volumes))
        queries = self.Qformer.queries(image_tokens)
        image_feats = F.normalize(self.vision_proj(queries), dim=-1)
        text_feat = F.normalize(self.text_proj(self.Qformer.text(report, report_mask)[:, 0, :]), dim=-1)
        qa_feat = F.normalize(self.qa_proj(self.Qformer.text(qa, qa_mask)[:, 0, :]), dim=-1)
        itc_report, itc_qa = self.itc(image_feats, text_feat), self.itc(image_feats, qa_feat)
        img = self.proj(queries)
        wte = self.lm_model.transformer.wte
        embeds = torch.cat([wte(prompt), img, wte(answer)], 1)
        mask = torch.cat([prompt_mask, torch.ones(img.shape[:2], dtype=torch.long), answer_mask], 1)
        prompt_labels = prompt.masked_fill(prompt_mask == 0, -100) if score_prompt else torch.full_like(prompt, -100)
        labels = torch.cat([prompt_labels, torch.full(img.shape[:2], -100, dtype=torch.long), answer.masked_fill(answer_mask == 0, -100)], 1)
        _, lm = self.lm_model(embeds, mask, labels)
        return image_tokens, queries, itc_report, itc_qa, lm

    @torch.no_grad()
    def greedy(self, volume, prompt, steps):
        img = self.proj(self.Qformer.queries(self.ln_vision(self.visual_encoder(volume))))
        embeds = torch.cat([self.lm_model.transformer.wte(prompt), img], 1)
        out = []
        for _ in range(steps):
            logits, _ = self.lm_model(embeds, torch.ones(embeds.shape[:2], dtype=torch.long))
            nxt = logits[:, -1].argmax(-1)
            out.append(int(nxt))
            embeds = torch.cat([embeds, self.lm_model.transformer.wte(nxt)[:, None]], 1)
        return out


model = MedBLIP()
with torch.no_grad():
    for name, p in model.named_parameters():
        if name != "temp":
            p.add_(torch.randn_like(p) * 0.2)
model.eval()

B = 3
volumes = torch.rand(B, 1, S["input"], S["input"], S["input"])
report = torch.tensor([[2, 7, 9, 4, 11, 3], [2, 5, 6, 3, 0, 0], [2, 8, 12, 13, 3, 0]])
report_mask = (torch.arange(6)[None, :] < torch.tensor([[6], [4], [5]])).long()
qa = torch.tensor([[2, 14, 15, 16, 17, 21, 3], [2, 14, 15, 16, 17, 22, 3], [2, 14, 15, 16, 17, 23, 3]])
qa_mask = torch.ones_like(qa)
prompt = torch.tensor([[5, 9, 13, 20, 21], [6, 11, 20, 21, 0], [7, 20, 21, 0, 0]])
prompt_mask = (torch.arange(5)[None, :] < torch.tensor([[5], [4], [3]])).long()
answer = torch.tensor([[30, 31, 39], [32, 39, 0], [33, 34, 39]])
answer_mask = (torch.arange(3)[None, :] < torch.tensor([[3], [2], [3]])).long()
args = (volumes, report, report_mask, qa, qa_mask, prompt, prompt_mask, answer, answer_mask)

image_tokens, queries, itc_report, itc_qa, lm = model(*args)
total = itc_report + itc_qa + lm
trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
grads = torch.autograd.grad(total, [p for _, p in trainable])
with torch.no_grad():
    lm_answer_only = model(*args, score_prompt=False)[4]
greedy = [model.greedy(volumes[i:i + 1], prompt[i:i + 1, :int(prompt_mask[i].sum())], 5) for i in range(B)]

tensors = {f"param/{n}": p.detach().clone() for n, p in model.named_parameters()}
tensors.update({f"input/{n}": t for n, t in zip(["volumes", "report", "report_mask", "qa", "qa_mask", "prompt", "prompt_mask", "answer", "answer_mask"], args)})
tensors.update({"output/image_tokens": image_tokens.detach(), "output/queries": queries.detach(), "output/itc_report": itc_report.detach().reshape(1),
                "output/itc_qa": itc_qa.detach().reshape(1), "output/lm": lm.detach().reshape(1), "output/lm_answer_only": lm_answer_only.reshape(1)})
tensors.update({f"grad/{n}": g.detach().clone() for (n, _), g in zip(trainable, grads)})

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
with open(os.path.join(here, "medblip_golden.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(head)))
    f.write(head)
    for raw in blobs:
        f.write(raw)
with open(os.path.join(here, "medblip_golden.json"), "w") as f:
    json.dump({"torch": torch.__version__, "sizes": S, "greedy": greedy, "trainable": [n for n, _ in trainable],
               "loss": {"itc_report": itc_report.item(), "itc_qa": itc_qa.item(), "lm": lm.item()}}, f, indent=1, sort_keys=True)
print("wrote medblip_golden.safetensors (%d tensors, %d bytes); greedy %s; losses %.5f %.5f %.5f" % (len(tensors), offset, greedy, itc_report, itc_qa, lm))
