"""numpy reference for exact top-10 retrieval (benchmarks/MedVlp.Benchmarks/RetrievalSideBySide.cs).

scores = M @ Q (one sgemv / sgemm through the BLAS numpy is linked to), then np.argpartition for the 10 best of each
query and a sort of those 10: what a user writes by hand. Run it through benchmarks/reference/topk_side_by_side.sh,
which puts Debian's OpenBLAS (pthreads) in front with LD_LIBRARY_PATH, unpacked, never installed.
"""
import argparse
import json
import time

import numpy as np

ROWS, DIM, K = 100_000, 768, 10


def blas_library():
    with open("/proc/self/maps") as maps:
        libs = {line.split()[-1] for line in maps if "blas" in line}
    return ", ".join(sorted(libs)) or "unknown"


def topk(m, q, k):
    scores = m @ q  # ROWS x queries
    part = np.argpartition(-scores, k, axis=0)[:k]
    best = np.take_along_axis(scores, part, axis=0)
    order = np.argsort(-best, axis=0, kind="stable")
    return np.take_along_axis(part, order, axis=0), np.take_along_axis(best, order, axis=0)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--times", help="append every timing to this file as JSON lines (topk_summary.py)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    m = rng.standard_normal((ROWS, DIM), dtype=np.float32)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    print(f"numpy {np.__version__}, BLAS: {blas_library()}")
    for queries in (1, 64):
        q = rng.standard_normal((DIM, queries), dtype=np.float32)
        q /= np.linalg.norm(q, axis=0, keepdims=True)
        topk(m, q, K)
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            topk(m, q, K)
            times.append((time.perf_counter() - t0) * 1000)
        if args.times:
            with open(args.times, "a") as f:
                f.write(json.dumps({"impl": "numpy", "queries": queries, "times": times}) + "\n")
        times.sort()
        median = times[len(times) // 2]
        gbs = m.nbytes / (median / 1000) / 1e9
        print(f"numpy top-{K} over {ROWS} x {DIM} float32, {queries} quer{'y' if queries == 1 else 'ies'}: median {median:.2f} ms (min {times[0]:.2f}), {gbs:.1f} GB/s of matrix")


if __name__ == "__main__":
    main()
