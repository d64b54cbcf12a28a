#!/usr/bin/env python3
"""Golden values for MedVlp.Losses.LinearAssignment: optimal costs from scipy.optimize.linear_sum_assignment.

Writes data/lap_golden.json: a list of cases, each
  name      -- what the case exercises
  rows/cols -- matrix shape
  maximize  -- scipy's `maximize` flag
  cost      -- the matrix, row-major, as float32 values (stored exactly; "inf"/"-inf" as strings)
  optimal   -- scipy's optimal total (float64 sum of the float32 entries it picked)
  pairs     -- min(rows, cols), the number of assigned pairs
  infeasible -- true when scipy raises "cost matrix is infeasible" (then optimal is null)

Ties allow different optimal assignments, so tests compare COSTS, not assignments.
Run with Debian's Python: /usr/bin/python3 tests/golden/make_lap_golden.py
"""
import json
import os

import numpy as np
from scipy.optimize import linear_sum_assignment

rng = np.random.default_rng(20261123)
cases = []


def add(name, m, maximize=False):
    m = np.asarray(m, dtype=np.float32)
    entry = {"name": name, "rows": int(m.shape[0]), "cols": int(m.shape[1]), "maximize": maximize,
             "cost": [float(str(x)) if np.isfinite(x) else ("inf" if x > 0 else "-inf") for x in m.ravel()],
             "pairs": int(min(m.shape))}
    try:
        r, c = linear_sum_assignment(m.astype(np.float64), maximize=maximize)
        entry["optimal"] = float(m.astype(np.float64)[r, c].sum())
        entry["infeasible"] = False
    except ValueError as e:
        assert "infeasible" in str(e), e
        entry["optimal"] = None
        entry["infeasible"] = True
    cases.append(entry)


for n in (1, 2, 3, 5, 8, 17, 33, 64):
    add(f"uniform_{n}x{n}", rng.random((n, n)))
add("normal_50x50", rng.standard_normal((50, 50)) * 100)
add("uniform_maximize_40x40", rng.random((40, 40)), maximize=True)
add("negative_30x30", -rng.random((30, 30)) * 5)
for n, hi in ((10, 3), (30, 10), (64, 5), (80, 100)):
    add(f"integer_{n}x{n}_0to{hi}", rng.integers(0, hi + 1, (n, n)))
add("integer_maximize_25x25", rng.integers(0, 4, (25, 25)), maximize=True)
for n in (1, 7, 32, 65):
    add(f"all_equal_{n}x{n}", np.full((n, n), 3.5))
add("all_zero_20x20", np.zeros((20, 20)))
a, b = rng.random(40), rng.random(40)
add("rank1_product_40x40", np.outer(a, b))
add("rank1_sum_40x40", a[:, None] + b[None, :])
add("rank1_integer_24x24", np.outer(rng.integers(1, 5, 24), rng.integers(1, 5, 24)))
add("identity_like_16x16", 1.0 - np.eye(16))
for r, c in ((1, 9), (3, 10), (10, 25), (25, 10), (9, 1), (48, 80), (80, 48), (31, 33)):
    add(f"rect_uniform_{r}x{c}", rng.random((r, c)))
add("rect_integer_20x45", rng.integers(0, 6, (20, 45)))
add("rect_integer_45x20", rng.integers(0, 6, (45, 20)))
add("rect_all_equal_12x30", np.full((12, 30), 1.0))
add("rect_maximize_15x40", rng.random((15, 40)), maximize=True)
add("rect_maximize_40x15", rng.random((40, 15)), maximize=True)
m = rng.random((30, 30)); m[rng.random((30, 30)) < 0.6] = np.inf; np.fill_diagonal(m, rng.random(30))
add("sparse_inf_feasible_30x30", m)
m = rng.random((12, 12)); m[:, 3] = np.inf; m[5, 3] = 0.5
add("inf_forced_column_12x12", m)
m = rng.random((10, 10)); m[4, :] = np.inf
add("infeasible_row_10x10", m)
m = rng.random((8, 8)); m[:3, :] = np.inf; m[:3, :2] = 1.0
add("infeasible_hall_8x8", m)
m = rng.random((6, 14)); m[:, :] = np.inf; m[:, 0] = 1.0
add("infeasible_rect_6x14", m)
m = rng.random((20, 20)); m[rng.random((20, 20)) < 0.5] = -np.inf; np.fill_diagonal(m, rng.random(20))
add("sparse_neg_inf_maximize_20x20", m, maximize=True)

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "lap_golden.json")
with open(out, "w") as f:
    json.dump(cases, f, separators=(",", ":"))
print(f"wrote {len(cases)} cases to {out}")
