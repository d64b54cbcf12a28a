#!/usr/bin/python3
"""Reference timing for the NIfTI load benchmark: nibabel's load + get_fdata(dtype=float32).

    /usr/bin/python3 benchmarks/reference/nibabel_load.py [FILE ...] [--repeat N]

FILE is relative to the test-data folder ($MEDVLP_TESTDATA or <repo>/.testdata); the default is
mricron/ch2better.nii.gz and mricron/ch2.nii.gz. Each file is loaded N times (default 10) after
one warm-up; the mean, median and minimum wall time are printed in ms. Compare with
NiftiLoadBenchmarks (BenchmarkDotNet) run in the same session on the same machine, and report
the ratio: the machine is shared and absolute numbers drift.
"""
import os
import statistics
import sys
import time

import numpy as np
import nibabel as nib

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.environ.get("MEDVLP_TESTDATA") or os.path.join(REPO, ".testdata")


def main(argv):
    repeat = 10
    if "--repeat" in argv:
        i = argv.index("--repeat")
        repeat = int(argv[i + 1])
        del argv[i:i + 2]
    files = argv or ["mricron/ch2better.nii.gz", "mricron/ch2.nii.gz"]
    for rel in files:
        path = os.path.join(DATA, rel)
        nib.load(path).get_fdata(dtype=np.float32)  # warm-up (imports, page cache)
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            data = nib.load(path).get_fdata(dtype=np.float32)
            times.append((time.perf_counter() - t0) * 1000)
        print("%-28s nibabel %s get_fdata(float32) %s: mean %.1f ms, median %.1f ms, min %.1f ms (n=%d)"
              % (rel, nib.__version__, data.shape, statistics.mean(times), statistics.median(times),
                 min(times), repeat))


if __name__ == "__main__":
    main(sys.argv[1:])
