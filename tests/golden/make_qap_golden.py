#!/usr/bin/env python3
"""Reference results of scipy.optimize.quadratic_assignment(method='faq', maximize=True) for FrankWolfeQapSolver.

Koopmans-Beckmann instances: maximise sum_{i != j} A[i,j] B[s(i), s(j)] over permutations s, with A, B symmetric,
zero diagonal (in MedVlp's Lawler form: complete graphs, edge affinity Ce[(i,j),(a,b)] = A[i,j] B[a,b]).
Cases: 'planted' (B = P A P^T, a random permutation P, the optimum is known) and 'random' (independent A, B).
Writes data/qap_golden.json: n, kind, A, B (row-major), scipy's col_ind and objective ("fun"), and for planted cases
the planted permutation (row i of A is row perm[i] of B).
Run: /usr/bin/python3 tests/golden/make_qap_golden.py
"""
import json
import os

import numpy as np
from scipy.optimize import quadratic_assignment

rng = np.random.default_rng(7)
cases = []


def sym(n):
    a = rng.random((n, n))
    a = np.triu(a, 1)
    return (a + a.T).astype(np.float32)


for n, kind in ((10, "planted"), (20, "planted"), (30, "planted"), (12, "random"), (20, "random"), (25, "random")):
    a = sym(n)
    if kind == "planted":
        perm = rng.permutation(n)
        b = np.zeros_like(a)
        b[np.ix_(perm, perm)] = a  # B[perm[i], perm[j]] = A[i, j]
    else:
        perm = None
        b = sym(n)
    res = quadratic_assignment(a.astype(np.float64), b.astype(np.float64), method="faq", options={"maximize": True})
    case = {"n": n, "kind": kind, "A": a.ravel().tolist(), "B": b.ravel().tolist(),
            "scipy_col_ind": res.col_ind.tolist(), "scipy_objective": float(res.fun)}
    if perm is not None:
        case["planted"] = perm.tolist()
    cases.append(case)
    print(n, kind, res.fun, "planted found" if perm is not None and (res.col_ind == perm).all() else "")

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "qap_golden.json")
with open(out, "w") as f:
    json.dump(cases, f, separators=(",", ":"))
print(f"wrote {len(cases)} cases to {out}")
