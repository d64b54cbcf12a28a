#!/usr/bin/python3
"""PyTorch reference for `dotnet run -c Release --project benchmarks/MedVlp.Benchmarks -- medblip THREADS REPEATS`
(benchmarks/MedVlp.Benchmarks/MedBlipSideBySide.cs): the MedBLIP reference modules of tests/golden/make_medblip_golden.py
(written after the released Qybc/MedBLIP code and LAVIS' Q-Former; its parity with MedVlp is tested) at the demo's tiny
sizes — 32^3 input, 8^3 patches, EVA width 64 x 2, Q-Former width 64 x 4 with 8 queries, GPT-2 width 64 x 2 over 50257
tokens — timing one training step (ITC(report) + ITC(QA) + LM with the prompt scored, backward, clip_grad_norm_(1.0),
AdamW over the trainable parts) at batch 24, and greedy decoding of one volume (45 prompt + 8 image tokens, 32 new)
without a cache (as the golden script decodes) and with a key/value cache (written here, Hugging Face's way).

Usage: /usr/bin/python3 benchmarks/reference/medblip_torch.py --threads 1 --repeats 10
"""
import argparse
import os
import statistics
import time

import torch

parser = argparse.ArgumentParser()
parser.add_argument("--threads", type=int, default=1)
parser.add_argument("--repeats", type=int, default=10)
a = parser.parse_args()
torch.set_num_threads(a.threads)

# The golden script's module definitions (everything before it builds its own model), then the tiny sizes.
golden = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "golden", "make_medblip_golden.py")
source = open(golden).read().split("\nmodel = MedBLIP()")[0]
ns = {"__name__": "medblip_reference"}
exec(compile(source, golden, "exec"), ns)
ns["S"].update(dict(input=32, patch=8, vw=64, vdepth=2, vheads=4, vmlp=128, qh=64, qlayers=4, qheads=4, qinter=128, queries=8,
                    qvocab=30522, qpos=128, lvocab=50257, lw=64, llayers=2, lheads=4, lpos=256, embed=32))
S = ns["S"]
B, REPORT, QA, PROMPT, ANSWER, NEW = 24, 40, 20, 45, 6, 32


def timed(fn, repeats):
    fn()
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), min(times)


torch.manual_seed(0)
model = ns["MedBLIP"]()
volumes = torch.rand(B, 1, S["input"], S["input"], S["input"])
ids = lambda n: torch.randint(1000, 2000, (B, n))
ones = lambda n: torch.ones(B, n, dtype=torch.long)
args = (volumes, ids(REPORT), ones(REPORT), ids(QA), ones(QA), ids(PROMPT), ones(PROMPT), ids(ANSWER), ones(ANSWER))
trainable = [p for p in model.parameters() if p.requires_grad]
opt = torch.optim.AdamW(trainable, lr=1e-4, weight_decay=1e-4)
model.train()
model.lm_model.eval()


def step():
    opt.zero_grad()
    _, _, itc_report, itc_qa, lm = model(*args)
    (itc_report + itc_qa + lm).backward()
    torch.nn.utils.clip_grad_norm_(trainable, 1.0)
    opt.step()


median, best = timed(step, a.repeats)
print(f"PyTorch {torch.__version__} MedBLIP reference (tiny), {a.threads} thread(s)")
print(f"train step: batch {B}, {S['input']}^3, prompt scored, {sum(p.numel() for p in trainable):,} trainable parameters: median {median:.1f} ms (min {best:.1f})")

model.eval()
one, prompt = volumes[:1], args[5][:1, :PROMPT]
uncached = lambda: model.greedy(one, prompt, NEW)


@torch.no_grad()
def cached():
    """Greedy decoding with a key/value cache: the reference's GPT-2 blocks, keys and values kept per layer."""
    lm = model.lm_model.transformer
    img = model.proj(model.Qformer.queries(model.ln_vision(model.visual_encoder(one))))
    h_in = torch.cat([lm.wte(prompt), img], 1)
    cache = [None] * len(lm.h)
    out, past = [], 0
    for _ in range(NEW):
        T = h_in.shape[1]
        h = h_in + lm.wpe(torch.arange(past, past + T)[None])
        for i, block in enumerate(lm.h):
            att = block.attn
            q, k, v = [att.split(t) for t in att.c_attn(block.ln_1(h)).split(S["lw"], dim=2)]
            if cache[i] is not None:
                k, v = torch.cat([cache[i][0], k], 2), torch.cat([cache[i][1], v], 2)
            cache[i] = (k, v)
            w = q @ k.transpose(-1, -2) / (att.size ** 0.5)
            causal = torch.ones(T, past + T, dtype=torch.bool).tril(past)[None, None]
            w = torch.where(causal, w, torch.full([], torch.finfo(w.dtype).min))
            o = (w.softmax(-1) @ v).permute(0, 2, 1, 3).reshape(1, T, S["lw"])
            h = h + att.c_proj(o)
            h = h + block.mlp.c_proj(ns["gelu_new"](block.mlp.c_fc(block.ln_2(h))))
        logits = torch.nn.functional.linear(lm.ln_f(h[:, -1]), lm.wte.weight)
        nxt = logits.argmax(-1)
        out.append(int(nxt))
        past += T
        h_in = lm.wte(nxt)[:, None]
    return out


assert cached() == uncached(), "the cached decoding must give the uncached tokens"
with_cache, _ = timed(cached, a.repeats)
without, _ = timed(uncached, a.repeats)
print(f"greedy, {PROMPT} prompt + {S['queries']} image tokens, {NEW} new: with cache {NEW / with_cache * 1000:.1f} tokens/s (median {with_cache:.1f} ms), "
      f"without {NEW / without * 1000:.1f} tokens/s (median {without:.1f} ms)")
