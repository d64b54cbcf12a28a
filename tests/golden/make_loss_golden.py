#!/usr/bin/python3
"""Golden values for MedVlp.Losses, computed with PyTorch (CPU, float64) from the formulas in
shared/reference/methods.md (open_clip-style ClipLoss / SigLipLoss, BLIP-2 ITC, M-FLAG, PRIOR).

Writes tests/golden/data/losses.json: {"cases": [case, ...]} where each case is
  name     : unique id, e.g. "clip/7x16/ls0.1"
  kind     : which loss ("clip", "clip_local", "siglip", "itc", "orth", "align", "prior_*", ...)
  params   : loss options (label_smoothing, off_diagonal_weight, ...)
  inputs   : {name: {"shape": [...], "data": [flattened row-major float64]}}
  value    : the loss value
  terms    : named terms (same names as the C# LossOutput terms), where the loss has any
  grads    : {input name: {"shape", "data"}} d value / d input
Inputs are random (fixed seed); re-running gives the same file.

Run:  /usr/bin/python3 tests/golden/make_loss_golden.py
"""
import json
import math
import os

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "losses.json")


def enc(t):
    t = t.detach()
    return {"shape": list(t.shape), "data": [float(v) for v in t.reshape(-1).tolist()]}


def case(name, kind, params, inputs, value, terms=None, grad_of=None):
    """inputs: dict name -> leaf tensor (requires_grad for those in grad_of)."""
    value.backward()
    grads = {k: enc(inputs[k].grad) for k in (grad_of or []) if inputs[k].grad is not None}
    return {
        "name": name,
        "kind": kind,
        "params": params,
        "inputs": {k: enc(v) for k, v in inputs.items()},
        "value": float(value.detach()),
        "terms": {k: float(v.detach()) for k, v in (terms or {}).items()},
        "grads": grads,
    }


def leaf(t):
    return t.detach().clone().requires_grad_(True)


# ---------------------------------------------------------------- contrastive (open_clip style)
def clip_loss(img, txt, scale, ls, all_img=None, all_txt=None, rank=0, local=False):
    if all_img is None:
        lpi = scale * img @ txt.T
        lpt = scale * txt @ img.T
        labels = torch.arange(img.shape[0])
    elif local:
        lpi = scale * img @ all_txt.T
        lpt = scale * txt @ all_img.T
        labels = torch.arange(img.shape[0]) + img.shape[0] * rank
    else:
        lpi = scale * all_img @ all_txt.T
        lpt = lpi.T
        labels = torch.arange(all_img.shape[0])
    i2t = F.cross_entropy(lpi, labels, label_smoothing=ls)
    t2i = F.cross_entropy(lpt, labels, label_smoothing=ls)
    return (i2t + t2i) / 2, {"image_to_text": i2t, "text_to_image": t2i}


def siglip_loss(img, txt, scale, bias):
    n = img.shape[0]
    logits = scale * img @ txt.T + bias
    labels = 2 * torch.eye(n) - torch.ones(n, n)
    return -F.logsigmoid(labels * logits).sum() / n


def itc_loss(q, txt, scale, ls):
    # q: B x Q x D, txt: B x D (BLIP-2 Blip2Qformer.forward, single process)
    sim_q2t = torch.matmul(q.unsqueeze(1), txt.unsqueeze(-1)).squeeze(-1)  # B x B x Q (i, j, q) = <q[i,q], t[j]>
    sim_i2t = sim_q2t.max(-1).values * scale
    sim_t2q = torch.matmul(txt.unsqueeze(1).unsqueeze(1), q.permute(0, 2, 1)).squeeze(-2)  # B x B x Q (i, j, q) = <t[i], q[j,q]>
    sim_t2i = sim_t2q.max(-1).values * scale
    labels = torch.arange(q.shape[0])
    i2t = F.cross_entropy(sim_i2t, labels, label_smoothing=ls)
    t2i = F.cross_entropy(sim_t2i, labels, label_smoothing=ls)
    return (i2t + t2i) / 2, {"image_to_text": i2t, "text_to_image": t2i}


# ---------------------------------------------------------------- M-FLAG
def off_diagonal(x):
    n, m = x.shape
    return x.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


def orth_loss(z, lam, scale):
    c = z.T @ z / z.shape[0]
    on = torch.diagonal(c).add(-1).pow(2).sum()
    off = off_diagonal(c).pow(2).sum()
    return scale * (on + lam * off), {"on_diagonal": on, "off_diagonal": off}


def align_loss(a, b):
    x = F.normalize(a, dim=-1)
    y = F.normalize(b, dim=-1)
    return (2 - 2 * (x * y).sum(-1) + 2 - 2 * (y * x).sum(-1)).mean()


def main():
    g = torch.Generator().manual_seed(20261123)
    cases = []

    def rn(*shape):
        return torch.randn(*shape, generator=g)

    for b, d in [(4, 8), (7, 16), (16, 32)]:
        for ls in [0.0, 0.1]:
            img = leaf(F.normalize(rn(b, d), dim=-1))
            txt = leaf(F.normalize(rn(b, d), dim=-1))
            scale = leaf(torch.tensor(1 / 0.07) * (0.5 + torch.rand((), generator=g)))
            value, terms = clip_loss(img, txt, scale, ls)
            cases.append(case(f"clip/{b}x{d}/ls{ls}", "clip", {"label_smoothing": ls},
                              {"image": img, "text": txt, "logit_scale": scale}, value, terms, ["image", "text", "logit_scale"]))

    # Two-process gather at rank 1: the other process's features are constants (gathered without gradient).
    for local in [True, False]:
        b, d = 5, 12
        img = leaf(F.normalize(rn(b, d), dim=-1))
        txt = leaf(F.normalize(rn(b, d), dim=-1))
        other_img = F.normalize(rn(b, d), dim=-1)
        other_txt = F.normalize(rn(b, d), dim=-1)
        scale = leaf(torch.tensor(20.0))
        all_img = torch.cat([other_img, img])
        all_txt = torch.cat([other_txt, txt])
        value, terms = clip_loss(img, txt, scale, 0.0, all_img, all_txt, rank=1, local=local)
        cases.append(case(f"clip_gather/{'local' if local else 'global'}", "clip_gather", {"label_smoothing": 0.0, "local_loss": local, "rank": 1},
                          {"image": img, "text": txt, "logit_scale": scale, "other_image": other_img, "other_text": other_txt},
                          value, terms, ["image", "text", "logit_scale"]))

    for b, d in [(4, 8), (9, 16), (16, 32)]:
        img = leaf(F.normalize(rn(b, d), dim=-1))
        txt = leaf(F.normalize(rn(b, d), dim=-1))
        scale = leaf(torch.tensor(10.0) * (0.5 + torch.rand((), generator=g)))
        bias = leaf(torch.tensor(-10.0) + rn(()))
        value = siglip_loss(img, txt, scale, bias)
        cases.append(case(f"siglip/{b}x{d}", "siglip", {}, {"image": img, "text": txt, "logit_scale": scale, "logit_bias": bias},
                          value, None, ["image", "text", "logit_scale", "logit_bias"]))

    for b, q, d in [(3, 4, 8), (6, 32, 16)]:
        for ls in [0.1, 0.0]:
            qf = leaf(F.normalize(rn(b, q, d), dim=-1))
            txt = leaf(F.normalize(rn(b, d), dim=-1))
            scale = leaf(torch.tensor(1 / 0.07))
            value, terms = itc_loss(qf, txt, scale, ls)
            cases.append(case(f"itc/{b}x{q}x{d}/ls{ls}", "itc", {"label_smoothing": ls},
                              {"queries": qf, "text": txt, "logit_scale": scale}, value, terms, ["queries", "text", "logit_scale"]))

    for n, d in [(8, 16), (32, 10), (5, 64)]:
        for variant, lam, sc in [("released", 0.0051, 0.5), ("paper", 1.0, 1.0)]:
            z = leaf(rn(n, d) * 0.7 + 0.1)
            value, terms = orth_loss(z, lam, sc)
            cases.append(case(f"orth/{n}x{d}/{variant}", "orth", {"off_diagonal_weight": lam, "scale": sc},
                              {"z": z}, value, terms, ["z"]))

    for n, d in [(5, 8), (12, 64)]:
        a = leaf(rn(n, d) * 3)
        b_ = leaf(rn(n, d) + 0.5)
        value = align_loss(a, b_)
        cases.append(case(f"align/{n}x{d}", "align", {}, {"image": a, "text": b_}, value, None, ["image", "text"]))

    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"generator": "tests/golden/make_loss_golden.py", "torch": torch.__version__, "cases": cases}, f, separators=(",", ":"))
    print(f"wrote {len(cases)} cases to {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
