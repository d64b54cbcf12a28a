#!/usr/bin/python3
"""Reference timings for benchmarks/MedVlp.Benchmarks/ResampleBenchmarks.cs, to run in the same session.

    /usr/bin/python3 benchmarks/reference/resample_reference.py [--threads N]

For each case (ch2better.nii.gz to 1 mm, ch2.nii.gz to 2 mm) the output shape is the one MedVlp's
ResampleToSpacing gives (TorchIO's grid: ceil(n * old / new)); the volume is resampled to that shape
  - scipy.ndimage.zoom(data, zoom, order=1)  (single-threaded; scipy has no threads option)
  - torch.nn.functional.interpolate(t, size, mode="trilinear", align_corners=False) with torch.set_num_threads(N)
on float32 data already in memory (loading excluded, as in the .NET benchmark). Prints the median and
minimum wall time of repeated runs and the mean process CPU time
(all threads) per call, in milliseconds: on a shared, loaded machine CPU time is the steadier measure.
"""
import argparse
import math
import os
import statistics
import time

import numpy as np
import nibabel as nib
import scipy
import scipy.ndimage as ndi
import torch
import torch.nn.functional as F

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.environ.get("MEDVLP_TESTDATA") or os.path.join(REPO, ".testdata")
CASES = [("mricron/ch2better.nii.gz", 1.0), ("mricron/ch2.nii.gz", 2.0)]


def timed(fn, repeat):
    """Median and minimum wall time and mean process CPU time (all threads) per call, in ms."""
    fn()  # warm-up
    times = []
    cpu0 = time.process_time()
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    cpu = (time.process_time() - cpu0) * 1000 / repeat
    return statistics.median(times), min(times), cpu


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("numpy %s, scipy %s, torch %s, torch threads %d" % (np.__version__, scipy.__version__, torch.__version__, torch.get_num_threads()))
    for rel, spacing in CASES:
        img = nib.load(os.path.join(DATA, rel))
        data = np.asarray(img.get_fdata(dtype=np.float32))
        old = np.sqrt((img.affine[:3, :3] ** 2).sum(axis=0))
        shape = [int(math.ceil(n * o / spacing)) for n, o in zip(data.shape, old)]
        zoom = [s / n for s, n in zip(shape, data.shape)]
        t = torch.from_numpy(np.ascontiguousarray(data))[None, None]
        scipy_ms = timed(lambda: ndi.zoom(data, zoom, order=1), max(3, args.repeat // 3))
        torch_ms = timed(lambda: F.interpolate(t, size=shape, mode="trilinear", align_corners=False), args.repeat)
        print("%s -> %g mm %s -> %s: scipy.ndimage.zoom(order=1) median %.1f ms (min %.1f, cpu %.1f ms/call); "
              "torch F.interpolate trilinear median %.1f ms (min %.1f, cpu %.1f ms/call)"
              % ((rel, spacing, list(data.shape), shape) + scipy_ms + torch_ms))


if __name__ == "__main__":
    main()
