"""Pools the timings that topk_numpy.py and `MedVlp.Benchmarks -- retrieval` appended to one JSON-lines file (several
interleaved rounds of each, see topk_side_by_side.sh) and prints medians, ratios and bytes per second as a table.

The ratio is MedVlp's median over numpy's median, both over every repetition of every round, so a burst of load from
other jobs that hits one round falls on both sides about equally.
"""
import json
import statistics
import sys

ROWS, DIM = 100_000, 768


def main(path):
    pooled = {}
    for line in open(path):
        entry = json.loads(line)
        pooled.setdefault((entry["impl"], entry["queries"]), []).extend(entry["times"])
    rounds = sum(1 for line in open(path) if json.loads(line)["impl"] == "numpy") // 2

    def med(key):
        return statistics.median(pooled[key]) if key in pooled else float("nan")

    print(f"{rounds} rounds; medians over all repetitions of all rounds")
    for element, size in (("f32", 4), ("f16", 2)):
        gb = ROWS * DIM * size / 1e9
        bandwidth = gb / (med((f"sum-{element}", 0)) / 1000)
        print(f"read bandwidth, SIMD sum over the mapped {element} matrix: {bandwidth:.1f} GB/s (median)")
    print("| queries | numpy + OpenBLAS | MedVlp float32 | MedVlp / numpy | MedVlp float32 GB/s | MedVlp float16 | float16 / numpy |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for queries in (1, 64):
        numpy = med(("numpy", queries))
        f32 = med(("medvlp-f32", queries))
        f16 = med(("medvlp-f16", queries))
        gbs = ROWS * DIM * 4 / 1e9 / (f32 / 1000)
        print(f"| {queries} | {numpy:.1f} ms | {f32:.1f} ms | {f32 / numpy:.2f}x | {gbs:.1f} | {f16:.1f} ms | {f16 / numpy:.2f}x |")


if __name__ == "__main__":
    main(sys.argv[1])
