#!/usr/bin/env python3
"""Golden values for MedVlp.Losses.GraphMatchingLoss (first order, black-box estimator), written from the formulas in
shared/reference/methods.md section 5 with PyTorch autograd and scipy's linear_sum_assignment:

  z1, z2     = normalize(view1), normalize(view2)                      (N x D)
  Cv         = z1 @ z2^T  [+ w * local],  local[i,a] = mean_p max_q cos(l1[i,p], l2[a,q])
  X          = argmax_X <Cv, X> over permutations (linear assignment)
  backward   : X' = argmax <Cv - lambda dL/dX, X>,  dL/dCv = (X - X') / lambda     (Vlastelica et al., maximisation form)
  loss       = Hamming(X, I) / N = sum(X (1 - I) + (1 - X) I) / N
               [+ c * (CE(Cv / t, arange N) + CE(Cv^T / t, arange N)) / 2]   (optional contrastive term, weight c, temperature t)

Writes data/graph_matching_golden.json: cases with n, d, lambda, local_weight, contrastive_weight, contrastive_temperature,
view1, view2 (and local1/local2 with their shapes when used), loss (and hamming, contrastive), grad_view1, grad_view2,
the assignment.
Run: /usr/bin/python3 tests/golden/make_graph_matching_golden.py
"""
import json
import os

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment


def lap_max(theta):
    r, c = linear_sum_assignment(theta.detach().double().numpy(), maximize=True)
    x = torch.zeros_like(theta)
    x[r, c] = 1
    return x


class BlackBoxMatching(torch.autograd.Function):
    @staticmethod
    def forward(ctx, theta, lam):
        x = lap_max(theta)
        ctx.save_for_backward(theta, x)
        ctx.lam = lam
        return x

    @staticmethod
    def backward(ctx, g):
        theta, x = ctx.saved_tensors
        xp = lap_max(theta - ctx.lam * g)
        return (x - xp) / ctx.lam, None


def loss_fn(v1, v2, lam, l1=None, l2=None, w=0.5, cw=0.0, ct=0.1):
    z1, z2 = F.normalize(v1, dim=-1), F.normalize(v2, dim=-1)
    cv = z1 @ z2.T
    if l1 is not None:
        n, p, d = l1.shape
        q = l2.shape[1]
        a = F.normalize(l1, dim=-1).reshape(n * p, d)
        b = F.normalize(l2, dim=-1).reshape(n * q, d)
        cv = cv + w * (a @ b.T).reshape(n, p, n, q).amax(3).mean(1)
    x = BlackBoxMatching.apply(cv, lam)
    eye = torch.eye(x.shape[0])
    hamming = (x * (1 - eye) + (1 - x) * eye).sum() / x.shape[0]
    targets = torch.arange(x.shape[0])
    contrastive = (F.cross_entropy(cv / ct, targets) + F.cross_entropy(cv.T / ct, targets)) / 2
    return hamming + cw * contrastive if cw > 0 else hamming, x, hamming, contrastive


torch.manual_seed(20261123)
cases = []
for n, d, noise, lam, local, cw, ct in ((8, 4, 1.5, 80.0, None, 0.0, 0.1), (16, 32, 2.5, 80.0, None, 0.0, 0.1),
                                        (33, 7, 1.0, 10.0, None, 0.0, 0.1), (12, 6, 1.5, 80.0, (3, 2, 5), 0.0, 0.1),
                                        (16, 8, 1.5, 80.0, None, 1.0, 0.1), (12, 6, 1.5, 20.0, (3, 2, 5), 0.5, 0.25)):
    v1 = torch.randn(n, d)
    v2 = v1 + noise * torch.randn(n, d)
    v1.requires_grad_(True)
    v2.requires_grad_(True)
    case = {"n": n, "d": d, "lambda": lam, "local_weight": 0.5, "contrastive_weight": cw, "contrastive_temperature": ct}
    l1 = l2 = None
    if local is not None:
        p, q, dl = local
        l1 = torch.randn(n, p, dl, requires_grad=True)
        l2 = torch.randn(n, q, dl, requires_grad=True)
        case.update({"local_shape1": [n, p, dl], "local_shape2": [n, q, dl],
                     "local1": l1.detach().flatten().tolist(), "local2": l2.detach().flatten().tolist()})
    loss, x, hamming, contrastive = loss_fn(v1, v2, lam, l1, l2, cw=cw, ct=ct)
    loss.backward()
    case.update({"view1": v1.detach().flatten().tolist(), "view2": v2.detach().flatten().tolist(),
                 "loss": loss.item(), "hamming": hamming.item(), "contrastive": contrastive.item(),
                 "assignment": x.argmax(1).tolist(),
                 "grad_view1": v1.grad.flatten().tolist(), "grad_view2": v2.grad.flatten().tolist()})
    if l1 is not None:
        case["grad_local1"] = l1.grad.flatten().tolist()
        case["grad_local2"] = l2.grad.flatten().tolist()
    assert 0 < loss.item(), "choose noise so that the matching is imperfect"
    cases.append(case)

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "graph_matching_golden.json")
with open(out, "w") as f:
    json.dump(cases, f, separators=(",", ":"))
print(f"wrote {len(cases)} cases to {out}; losses {[round(c['loss'], 4) for c in cases]}")
