"""Golden values for the exact top-k index (tests/MedVlp.Retrieval.Tests/ExactIndexGoldenTests.cs).

Brute-force cosine top-k in numpy, the way a user checks an index by hand: normalise the rows and the queries,
scores = M @ Q.T, argpartition for the k best, then sort. The embeddings are written as a standard .npy file that
the C# test builds its index from; the test also opens numpy's own normalised matrix as an index.

Run with /usr/bin/python3 tests/golden/make_retrieval_golden.py (numpy only).
"""
import json
import os

import numpy as np

OUT = os.path.join(os.path.dirname(__file__), "data", "retrieval")
ROWS, DIM, QUERIES, K = 600, 32, 8, 10


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20261202)
    # Clustered embeddings, like cases of a few diagnoses: 6 centres plus noise.
    centres = rng.normal(size=(6, DIM))
    labels = rng.integers(0, 6, size=ROWS)
    embeddings = (centres[labels] + 0.7 * rng.normal(size=(ROWS, DIM))).astype(np.float32)
    queries = (centres[rng.integers(0, 6, size=QUERIES)] + 0.7 * rng.normal(size=(QUERIES, DIM))).astype(np.float32)
    np.save(os.path.join(OUT, "embeddings.npy"), embeddings)
    np.save(os.path.join(OUT, "queries.npy"), queries)
    m = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    np.save(os.path.join(OUT, "normalised.npy"), m.astype(np.float32))
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    scores = m @ q.T  # ROWS x QUERIES, float32
    expected = []
    for j in range(QUERIES):
        column = scores[:, j]
        top = np.argpartition(-column, K)[:K]
        top = top[np.argsort(-column[top], kind="stable")]
        ordered = np.sort(column.astype(np.float64))[::-1]
        assert ordered[K - 1] - ordered[K] > 1e-5, "the k-th and (k+1)-th scores are too close for an exact comparison"
        expected.append({"ids": [f"case_{i:04d}" for i in top], "scores": [float(column[i]) for i in top]})
    with open(os.path.join(OUT, "topk.json"), "w") as f:
        json.dump({"k": K, "rows": ROWS, "dim": DIM, "queries": expected}, f, indent=1)


if __name__ == "__main__":
    main()
