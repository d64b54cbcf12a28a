"""Golden values for MedVlp's generation engine (src/MedVlp/Inference/Generation), from a PyTorch reference written
after Hugging Face transformers' algorithms (transformers itself is not installed here), never from MedVlp's code:

  * model      a tiny GPT-2 (Hugging Face GPT2LMHeadModel layout: wte, wpe, h.{i}.ln_1 / attn.c_attn / attn.c_proj /
               ln_2 / mlp.c_fc / mlp.c_proj with gelu_new, ln_f, lm_head tied to wte), random fixed weights; every step
               recomputes the whole sequence (no key/value cache), so the cache of MedVlp is checked too.
  * greedy     GenerationMixin greedy search: arg-max of the processed scores, stop at eos or max_new_tokens.
  * repetition RepetitionPenaltyLogitsProcessor (score < 0 -> score * p, else score / p) on the generated tokens.
  * beam       GenerationMixin beam search with BeamSearchScorer / BeamHypotheses as in transformers 4.45: scores =
               log_softmax(logits) + beam score, first step only beam 0 (others -1e9), top 2 * num_beams of
               (num_beams * vocab), eos candidates of rank < num_beams become hypotheses scored
               sum / generated_len ** length_penalty with generated_len counting the eos, is_done heuristic
               (early_stopping False: worst >= best_next / cur_generated ** lp; True: as soon as num_beams are done),
               finalize adds the open beams (generated_len = their length) unless done; best = highest score.
  * warpers    TemperatureLogitsWarper, TopKLogitsWarper (k = max(top_k, min_tokens_to_keep); scores < k-th -> -inf),
               TopPLogitsWarper (ascending sort, softmax cumsum <= 1 - top_p removed, last min_tokens_to_keep kept),
               in generate's order temperature -> top-k -> top-p, on fixed logits.

Writes data/generation_golden.safetensors (param/<name> in MedVlp's = Hugging Face's names, input/<case>,
warp/<case>) and data/generation_golden.json (the cases and their expected tokens and scores).
Run: /usr/bin/python3 tests/golden/make_generation_golden.py
"""
import json
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from golden_io import save_f32_safetensors  # the shared writer (tests/golden/golden_io.py)

torch.manual_seed(20261202)
S = dict(vocab=48, width=16, layers=2, heads=2, positions=32)


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        n = S["width"]
        self.heads, self.size = S["heads"], n // S["heads"]
        self.c_attn = nn.Linear(n, 3 * n)
        self.c_proj = nn.Linear(n, n)

    def forward(self, h):
        B, T, n = h.shape
        q, k, v = [t.view(B, T, self.heads, self.size).permute(0, 2, 1, 3) for t in self.c_attn(h).split(n, dim=2)]
        w = q @ k.transpose(-1, -2) / math.sqrt(self.size)
        causal = torch.tril(torch.ones(T, T, dtype=torch.bool))[None, None]
        w = torch.where(causal, w, torch.full([], torch.finfo(w.dtype).min))
        out = (w.softmax(-1) @ v).permute(0, 2, 1, 3).reshape(B, T, n)
        return self.c_proj(out)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        n = S["width"]
        self.ln_1 = nn.LayerNorm(n, eps=1e-5)
        self.attn = Attention()
        self.ln_2 = nn.LayerNorm(n, eps=1e-5)
        self.mlp = nn.Module()
        self.mlp.c_fc = nn.Linear(n, 4 * n)
        self.mlp.c_proj = nn.Linear(4 * n, n)

    def forward(self, h):
        h = h + self.attn(self.ln_1(h))
        return h + self.mlp.c_proj(gelu_new(self.mlp.c_fc(self.ln_2(h))))


class Transformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(S["vocab"], S["width"])
        self.wpe = nn.Embedding(S["positions"], S["width"])
        self.h = nn.ModuleList([Block() for _ in range(S["layers"])])
        self.ln_f = nn.LayerNorm(S["width"], eps=1e-5)


class LMHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.transformer = Transformer()

    def logits(self, prefix_embeds, tokens):
        """Next-token logits after [prefix embeddings; wte(tokens)] for every row (rows x vocab)."""
        t = self.transformer
        rows = tokens.shape[0]
        x = prefix_embeds.expand(rows, -1, -1)
        if tokens.shape[1] > 0:
            x = torch.cat([x, t.wte(tokens)], 1)
        h = x + t.wpe(torch.arange(x.shape[1]))[None]
        for block in t.h:
            h = block(h)
        return F.linear(t.ln_f(h), t.wte.weight)[:, -1]


model = LMHead()
with torch.no_grad():
    for name, p in model.named_parameters():
        if name.endswith("wte.weight"):
            p.normal_(0, 0.6)  # peaked next-token distributions, so beams and eos matter
        elif p.dim() == 2:
            p.normal_(0, 0.3)
        elif "ln" in name and name.endswith("weight"):
            p.uniform_(0.7, 1.3)
        else:
            p.normal_(0, 0.1)
model.eval()


def prefix_of(case):
    parts = []
    if case["prompt"]:
        parts.append(model.transformer.wte(torch.tensor([case["prompt"]])))
    if case.get("embeds"):
        parts.append(tensors["input/" + case["embeds"]])
    return torch.cat(parts, 1)


def repetition(scores, generated, penalty):
    if penalty == 1.0 or generated.shape[1] == 0:
        return scores
    picked = torch.gather(scores, 1, generated)
    picked = torch.where(picked < 0, picked * penalty, picked / penalty)
    return scores.scatter(1, generated, picked)


@torch.no_grad()
def greedy(case):
    prefix = prefix_of(case)
    out = torch.zeros(1, 0, dtype=torch.long)
    for _ in range(case["max_new"]):
        scores = repetition(model.logits(prefix, out), out, case.get("repetition", 1.0))
        nxt = scores.argmax(-1)
        if case["eos"] is not None and nxt.item() == case["eos"]:
            break
        out = torch.cat([out, nxt[:, None]], 1)
    return out[0].tolist()


class Hypotheses:
    def __init__(self, beams, lp, early):
        self.beams, self.lp, self.early, self.items, self.worst = beams, lp, early, [], 1e9

    def add(self, hyp, total, generated_len):
        score = total / (generated_len ** self.lp)
        if len(self.items) < self.beams or score > self.worst:
            self.items.append((score, hyp))
            if len(self.items) > self.beams:
                ranked = sorted([(s, i) for i, (s, _) in enumerate(self.items)])
                del self.items[ranked[0][1]]
                self.worst = ranked[1][0]
            else:
                self.worst = min(score, self.worst)

    def is_done(self, best_total, generated_len):
        if len(self.items) < self.beams:
            return False
        if self.early:
            return True
        return self.worst >= best_total / generated_len ** self.lp


@torch.no_grad()
def beam_search(case):
    prefix = prefix_of(case)
    B, V, eos = case["beams"], S["vocab"], case["eos"]
    ids = torch.zeros(B, 0, dtype=torch.long)
    beam_scores = torch.zeros(B)
    beam_scores[1:] = -1e9
    hyps = Hypotheses(B, case["length_penalty"], case["early"])
    done = False
    for step in range(case["max_new"]):
        scores = F.log_softmax(model.logits(prefix, ids), -1)
        scores = repetition(scores, ids, case.get("repetition", 1.0))
        scores = scores + beam_scores[:, None]
        values, flat = torch.topk(scores.view(1, -1), 2 * B, dim=1, largest=True, sorted=True)
        tokens, parents = flat % V, torch.div(flat, V, rounding_mode="floor")
        nb_scores, nb_tokens, nb_parents = [], [], []
        for rank in range(2 * B):
            tok, par, val = tokens[0, rank].item(), parents[0, rank].item(), values[0, rank].item()
            if eos is not None and tok == eos:
                if rank >= B:
                    continue
                hyps.add(ids[par].tolist(), val, step + 1)
            else:
                nb_scores.append(val)
                nb_tokens.append(tok)
                nb_parents.append(par)
            if len(nb_tokens) == B:
                break
        done = hyps.is_done(values[0].max().item(), step + 1)
        ids = torch.cat([ids[nb_parents], torch.tensor(nb_tokens)[:, None]], 1)
        beam_scores = torch.tensor(nb_scores)
        if done:
            break
    if not done:
        for b in range(B):
            hyps.add(ids[b].tolist(), beam_scores[b].item(), ids.shape[1])
    best = sorted(hyps.items, key=lambda x: x[0])[-1]
    return best[1], best[0]


def warp(scores, temperature=1.0, top_k=None, top_p=1.0, keep=1):
    if temperature != 1.0:
        scores = scores / temperature
    if top_k is not None:
        k = min(max(top_k, keep), scores.shape[-1])
        scores = scores.masked_fill(scores < torch.topk(scores, k)[0][..., -1, None], -float("inf"))
    if top_p < 1.0:
        sorted_logits, sorted_indices = torch.sort(scores, descending=False)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        remove = cumulative <= (1 - top_p)
        remove[..., -keep:] = 0
        scores = scores.masked_fill(remove.scatter(1, sorted_indices, remove), -float("inf"))
    return scores


tensors = {f"param/{n}": p.detach().clone() for n, p in model.named_parameters()}
tensors["input/embeds"] = torch.randn(1, 3, S["width"]) * 0.8
tensors["input/logits"] = torch.randn(3, S["vocab"]) * 2.0

first = greedy(dict(prompt=[3, 17, 8, 25], max_new=10, eos=None))
eos = first[2]  # a token the model really produces, so eos ends sequences and beams
cases = {
    "greedy": [dict(prompt=[3, 17, 8, 25], max_new=10, eos=None), dict(prompt=[3, 17, 8, 25], max_new=10, eos=eos),
               dict(prompt=[5, 1], embeds="embeds", max_new=8, eos=eos), dict(prompt=[40, 2, 9], max_new=12, eos=None, repetition=1.5),
               dict(prompt=[], embeds="embeds", max_new=6, eos=None)],
    "beam": [dict(prompt=[3, 17, 8, 25], max_new=8, eos=eos, beams=3, length_penalty=1.0, early=False),
             dict(prompt=[3, 17, 8, 25], max_new=8, eos=eos, beams=4, length_penalty=2.0, early=False),
             dict(prompt=[3, 17, 8, 25], max_new=8, eos=eos, beams=2, length_penalty=-0.5, early=True),
             dict(prompt=[5, 1], embeds="embeds", max_new=7, eos=eos, beams=3, length_penalty=1.0, early=False),
             dict(prompt=[12, 30, 7], max_new=6, eos=None, beams=3, length_penalty=1.0, early=False, repetition=1.3)],
    "warp": [dict(temperature=0.7), dict(top_k=5), dict(top_k=2, keep=4), dict(top_p=0.8), dict(top_p=0.3, keep=3),
             dict(top_p=0.05), dict(temperature=1.3, top_k=10, top_p=0.9)],
}
for c in cases["greedy"]:
    c["expected"] = greedy(c)
for c in cases["beam"]:
    c["expected"], c["score"] = beam_search(c)
for i, c in enumerate(cases["warp"]):
    tensors[f"warp/{i}"] = warp(tensors["input/logits"], c.get("temperature", 1.0), c.get("top_k"), c.get("top_p", 1.0), c.get("keep", 1))
    c["kept"] = torch.isfinite(tensors[f"warp/{i}"]).sum(-1).tolist()

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
save_f32_safetensors(os.path.join(here, "generation_golden.safetensors"), tensors)
with open(os.path.join(here, "generation_golden.json"), "w") as f:
    json.dump({"torch": torch.__version__, "sizes": S, "eos": eos, "cases": cases}, f, indent=1, sort_keys=True)
for kind in ("greedy", "beam"):
    for c in cases[kind]:
        print(kind, c["expected"], c.get("score"))
print("warp kept", [c["kept"] for c in cases["warp"]])
