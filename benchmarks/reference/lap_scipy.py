#!/usr/bin/env python3
"""Reference timing for LinearAssignmentBenchmarks: scipy.optimize.linear_sum_assignment on random uniform [0,1)
float32 costs (scipy works in float64; the conversion is included, as a caller passing float32 would pay it).

Run in the same session as the .NET benchmark and compare ratios:
  /usr/bin/python3 benchmarks/reference/lap_scipy.py
"""
import timeit

import numpy as np
import scipy
from scipy.optimize import linear_sum_assignment

print(f"scipy {scipy.__version__}, numpy {np.__version__}")
for n in (64, 256, 1024):
    rng = np.random.default_rng(1234 + n)
    c32 = rng.random((n, n), dtype=np.float32)
    c64 = c32.astype(np.float64)
    for name, c in (("float32 input", c32), ("float64 input", c64)):
        t = timeit.Timer(lambda: linear_sum_assignment(c))
        number, _ = t.autorange()
        best = min(t.repeat(repeat=7, number=number)) / number
        print(f"n={n:5d} {name}: {best * 1e6:12.1f} us (best of 7 x {number})")
