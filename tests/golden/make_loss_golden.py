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
    """12 significant digits: the tests compare to 1e-5 relative, so this costs nothing and halves the file.
    Inputs are rounded the same way BEFORE the reference is computed (see leaf/rn), so they are stored exactly."""
    t = t.detach()
    return {"shape": list(t.shape), "data": [r12(v) for v in t.reshape(-1).tolist()]}


def r12(v):
    return float(f"{v:.12g}")


def rounded(t):
    return t.detach().clone().apply_(r12)


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
        "terms": {k: float(v.detach()) for k, v in (terms or {}).items()},  # scalars keep full precision
        "grads": grads,
    }


def leaf(t):
    return rounded(t).requires_grad_(True)


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


def siglip_loss_distributed(img, txt, others, scale, bias):
    """open_clip SigLipLoss with world_size > 1: the local loss plus, for every other process's texts, a
    negative-only loss (labels all -1), each divided by the local batch size."""
    n = img.shape[0]

    def part(t, negative_only):
        logits = scale * img @ t.T + bias
        labels = -torch.ones(n, t.shape[0]) if negative_only else 2 * torch.eye(n) - torch.ones(n, n)
        return -F.logsigmoid(labels * logits).sum() / n

    return part(txt, False) + sum(part(o, True) for o in others)


def itc_loss_gathered(q, txt, all_q, all_txt, rank, scale, ls):
    """BLIP-2 Blip2Qformer.forward with gathered features: local rows against all columns, targets offset by rank."""
    sim_q2t = torch.matmul(q.unsqueeze(1), all_txt.unsqueeze(-1)).squeeze(-1)   # B x B' x Q
    sim_i2t = sim_q2t.max(-1).values * scale
    sim_t2q = torch.matmul(txt.unsqueeze(1).unsqueeze(1), all_q.permute(0, 2, 1)).squeeze(-2)  # B x B' x Q
    sim_t2i = sim_t2q.max(-1).values * scale
    targets = torch.arange(q.shape[0]) + rank * q.shape[0]
    i2t = F.cross_entropy(sim_i2t, targets, label_smoothing=ls)
    t2i = F.cross_entropy(sim_t2i, targets, label_smoothing=ls)
    return (i2t + t2i) / 2, {"image_to_text": i2t, "text_to_image": t2i}


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



# ---------------------------------------------------------------- PRIOR
def local_alignment(img, txt, mask, w):
    """Per sample, as the released LocalCrossAttention: separate Q,K,V per modality, sigmoid scores."""
    d = img.shape[-1]
    lin = lambda x, n: x @ w[n + ".weight"].T + w[n + ".bias"]
    ci, ait, ct, ati = [], [], [], []
    for b in range(img.shape[0]):
        s = int(mask[b].sum())
        I, T = img[b], txt[b, :s]
        q1, k1, v1 = lin(I, "query1"), lin(I, "key1"), lin(I, "value1")
        q2, k2, v2 = lin(T, "query2"), lin(T, "key2"), lin(T, "value2")
        a1 = torch.sigmoid(q2 @ k1.T / math.sqrt(d))          # S x N
        c1 = a1 @ v1                                          # S x D
        a2 = torch.sigmoid(q1 @ k2.T / math.sqrt(d))          # N x S
        c2 = a2 @ v2                                          # N x D
        pad = txt.shape[1] - s
        ci.append(c2)
        ait.append(torch.cat([a2, torch.zeros(a2.shape[0], pad)], 1))
        ct.append(torch.cat([c1, torch.zeros(pad, d)], 0))
        ati.append(torch.cat([a1, torch.zeros(pad, a1.shape[1])], 0))
    return torch.stack(ci), torch.stack(ait), torch.stack(ct), torch.stack(ati)


def simsiam_loss(img, ctx, w):
    def p(x):
        h = torch.relu(x @ w["predictor.0.weight"].T + w["predictor.0.bias"])
        return h @ w["predictor.2.weight"].T + w["predictor.2.bias"]
    a = F.cosine_similarity(p(img), ctx.detach(), dim=-1).mean()
    b = F.cosine_similarity(p(ctx), img.detach(), dim=-1).mean()
    return -0.5 * (a + b), {"cos_image_to_context": a, "cos_context_to_image": b}


def sentence_infonce(sent, ctx, scale, mask):
    c2s, s2c = [], []
    for b in range(sent.shape[0]):
        s = int(mask[b].sum())
        if s == 0:
            continue
        T = F.normalize(sent[b, :s], dim=-1)
        C = F.normalize(ctx[b, :s], dim=-1)
        logits = scale * C @ T.T
        labels = torch.arange(s)
        c2s.append(F.cross_entropy(logits, labels))
        s2c.append(F.cross_entropy(logits.T, labels))
    c2s, s2c = torch.stack(c2s), torch.stack(s2c)
    return ((c2s + s2c) / 2).mean(), {"context_to_sentence": c2s.mean(), "sentence_to_context": s2c.mean()}


def prototype_noise_free(x, e, tau):
    logits = x @ e.T
    w = F.softmax(logits / tau, dim=-1)
    return w @ e, logits, w


def prototype_matching(g, t, lgt, e, l1w, klw):
    from scipy.optimize import linear_sum_assignment
    idx = []
    for b in range(g.shape[0]):
        cost = torch.cdist(g[b].detach(), t[b].detach(), p=1).numpy()
        rows, cols = linear_sum_assignment(cost)
        idx.append(torch.as_tensor(cols)[torch.as_tensor(rows).argsort()])
    idx = torch.stack(idx)
    tm = torch.gather(t, 1, idx.unsqueeze(2).expand(-1, -1, t.shape[2]))
    lm = torch.gather(lgt, 1, idx.unsqueeze(2).expand(-1, -1, lgt.shape[2]))
    l1 = F.l1_loss(g, tm)
    kl = F.kl_div(F.log_softmax(g @ e.T, -1), F.log_softmax(lm, -1), reduction="batchmean", log_target=True)
    return l1w * l1 + klw * kl, {"l1": l1, "kl": kl}, idx


def main():
    g = torch.Generator().manual_seed(20261123)
    cases = []

    def rn(*shape):
        return rounded(torch.randn(*shape, generator=g))

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
        other_img = rounded(F.normalize(rn(b, d), dim=-1))
        other_txt = rounded(F.normalize(rn(b, d), dim=-1))
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

    for b, q, d in [(3, 4, 8), (4, 32, 8)]:
        for ls in [0.1, 0.0]:
            qf = leaf(F.normalize(rn(b, q, d), dim=-1))
            txt = leaf(F.normalize(rn(b, d), dim=-1))
            scale = leaf(torch.tensor(1 / 0.07))
            value, terms = itc_loss(qf, txt, scale, ls)
            cases.append(case(f"itc/{b}x{q}x{d}/ls{ls}", "itc", {"label_smoothing": ls},
                              {"queries": qf, "text": txt, "logit_scale": scale}, value, terms, ["queries", "text", "logit_scale"]))

    # Two processes, this one rank 1; the peer's features are constants.
    b, d = 5, 12
    img = leaf(F.normalize(rn(b, d), dim=-1))
    txt = leaf(F.normalize(rn(b, d), dim=-1))
    other_txt = rounded(F.normalize(rn(b, d), dim=-1))
    scale = leaf(torch.tensor(10.0))
    bias = leaf(torch.tensor(-10.0))
    value = siglip_loss_distributed(img, txt, [other_txt], scale, bias)
    cases.append(case("siglip_gather/rank1", "siglip_gather", {"rank": 1},
                      {"image": img, "text": txt, "logit_scale": scale, "logit_bias": bias, "other_text": other_txt},
                      value, None, ["image", "text", "logit_scale", "logit_bias"]))

    b, q, d = 3, 4, 8
    qf = leaf(F.normalize(rn(b, q, d), dim=-1))
    txt = leaf(F.normalize(rn(b, d), dim=-1))
    other_q = rounded(F.normalize(rn(b, q, d), dim=-1))
    other_txt = rounded(F.normalize(rn(b, d), dim=-1))
    scale = leaf(torch.tensor(1 / 0.07))
    value, terms = itc_loss_gathered(qf, txt, torch.cat([other_q, qf]), torch.cat([other_txt, txt]), 1, scale, 0.1)
    cases.append(case("itc_gather/rank1", "itc_gather", {"rank": 1, "label_smoothing": 0.1},
                      {"queries": qf, "text": txt, "logit_scale": scale, "other_queries": other_q, "other_text": other_txt},
                      value, terms, ["queries", "text", "logit_scale"]))

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

    # PRIOR local alignment module: random weights, variable sentence counts (mask); value = <c_i, R1> + <c_t, R2>.
    for b, n, smax, d in [(2, 5, 4, 8), (3, 7, 6, 12)]:
        img = leaf(rn(b, n, d))
        txt = leaf(rn(b, smax, d))
        counts = [smax] + [max(1, smax - 1 - i) for i in range(b - 1)]
        mask = torch.zeros(b, smax)
        for i, cnt in enumerate(counts):
            mask[i, :cnt] = 1
        txt_in = leaf(txt.detach() * mask.unsqueeze(2))
        w = {}
        for name in ["query1", "key1", "value1", "query2", "key2", "value2"]:
            w[name + ".weight"] = leaf(rn(d, d) / math.sqrt(d))
            w[name + ".bias"] = leaf(rn(d) * 0.1)
        ci, ait, ct, ati = local_alignment(img, txt_in, mask, w)
        r1, r2 = rn(*ci.shape), rn(*ct.shape) * mask.unsqueeze(2)
        value = (ci * r1).sum() + (ct * r2).sum()
        inputs = {"image": img, "sentences": txt_in, "mask": mask, "r1": r1, "r2": r2, **w}
        c = case(f"prior_local/{b}x{n}x{smax}x{d}", "prior_local", {}, inputs, value, None, ["image", "sentences", "query1.weight", "key2.bias", "value1.weight"])
        c["outputs"] = {"image_context": enc(ci), "image_attention": enc(ait), "text_context": enc(ct), "text_attention": enc(ati)}
        cases.append(c)

    for b, n, d in [(2, 5, 8), (2, 49, 8)]:
        img = leaf(rn(b, n, d))
        ctx = leaf(rn(b, n, d) + 0.3 * img.detach())
        w = {"predictor.0.weight": leaf(rn(d // 2, d) / math.sqrt(d)), "predictor.0.bias": leaf(rn(d // 2) * 0.1),
             "predictor.2.weight": leaf(rn(d, d // 2) / math.sqrt(d // 2)), "predictor.2.bias": leaf(rn(d) * 0.1)}
        value, terms = simsiam_loss(img, ctx, w)
        cases.append(case(f"prior_simsiam/{b}x{n}x{d}", "prior_simsiam", {}, {"image": img, "context": ctx, **w}, value, terms,
                          ["image", "context", "predictor.0.weight", "predictor.2.bias"]))

    for b, smax, d, counts in [(3, 5, 8, [5, 3, 1]), (4, 7, 16, [7, 0, 4, 2])]:
        mask = torch.zeros(b, smax)
        for i, cnt in enumerate(counts):
            mask[i, :cnt] = 1
        sent = leaf(rn(b, smax, d) * mask.unsqueeze(2))
        ctx = leaf(rn(b, smax, d) * mask.unsqueeze(2) + 0.5 * sent.detach())
        scale = leaf(torch.tensor(100.0) * (0.2 + torch.rand((), generator=g)))
        value, terms = sentence_infonce(sent, ctx, scale, mask)
        cases.append(case(f"prior_sentence/{b}x{smax}x{d}", "prior_sentence", {}, {"sentences": sent, "contexts": ctx, "logit_scale": scale, "mask": mask},
                          value, terms, ["sentences", "contexts", "logit_scale"]))

    for shape, k, d in [((6,), 10, 8), ((2, 4), 32, 16)]:
        x = leaf(rn(*shape, d) * 0.5)
        e = leaf(rn(k, d) * 0.5)
        rec, logits, wts = prototype_noise_free(x, e, 0.9)
        value = F.l1_loss(rec, x)
        c = case(f"prior_prototype/{'x'.join(map(str, shape))}x{d}/k{k}", "prior_prototype", {"temperature": 0.9}, {"x": x, "prototypes": e}, value, None, ["x", "prototypes"])
        c["outputs"] = {"reconstructed": enc(rec), "logits": enc(logits), "weights": enc(wts)}
        cases.append(c)

    for b, m, real, d, k in [(2, 16, [16, 9], 8, 12), (3, 6, [2, 6, 4], 16, 20)]:
        t = torch.zeros(b, m, d)
        for i, cnt in enumerate(real):
            t[i, :cnt] = rn(cnt, d)
        t = leaf(t)
        gpred = leaf(rn(b, m, d))
        e = leaf(rn(k, d) * 0.5)
        real_mask = (t.detach().abs().sum(-1, keepdim=True) > 0).double()
        lgt = leaf(t.detach() @ e.detach().T + 0.1 * rn(b, m, k) * real_mask)  # padded targets: logits of a zero vector
        value, terms, idx = prototype_matching(gpred, t, lgt, e, 10.0, 1.0)
        # Zero-padded targets are interchangeable (ties): the value, dPredictions and dPrototypes do not depend on how the
        # padded slots are permuted, but the assignment to padded slots and their own gradients do; "real" lets tests tell.
        c = case(f"prior_matching/{b}x{m}x{d}/k{k}", "prior_matching", {"l1_weight": 10.0, "kl_weight": 1.0, "real": real},
                 {"predictions": gpred, "targets": t, "target_logits": lgt, "prototypes": e}, value, terms,
                 ["predictions", "targets", "target_logits", "prototypes"])
        c["outputs"] = {"assignment": enc(idx.double())}
        cases.append(c)

    # SIMD evaluation paths (MedVlp.Losses.Similarity): float32 inputs, float64 reference values.
    for n, m, d in [(5, 7, 16), (32, 32, 64), (3, 40, 128)]:
        a = rn(n, d).float().double()
        b_ = rn(m, d).float().double()
        cos = F.normalize(a, dim=-1) @ F.normalize(b_, dim=-1).T
        dots = a @ b_.T
        scale = 14.285714149475098  # float32(1 / 0.07)
        probs = F.softmax(scale * cos, dim=-1)
        k = min(5, m)
        topk = torch.topk(cos, k, dim=-1).indices
        c = {"name": f"similarity/{n}x{m}x{d}", "kind": "similarity", "params": {"logit_scale": scale, "k": k},
             "inputs": {"a": enc(a), "b": enc(b_)}, "value": 0.0, "terms": {}, "grads": {},
             "outputs": {"cosine": enc(cos), "dots": enc(dots), "softmax": enc(probs), "topk": enc(topk.double())}}
        if n == m:
            an, bn = F.normalize(a, dim=-1), F.normalize(b_, dim=-1)
            c["outputs"]["infonce"] = enc(torch.stack([clip_loss(an, bn, torch.tensor(scale), ls)[0] for ls in (0.0, 0.1)]))
        cases.append(c)

    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"generator": "tests/golden/make_loss_golden.py", "torch": torch.__version__, "cases": cases}, f, separators=(",", ":"))
    print(f"wrote {len(cases)} cases to {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
