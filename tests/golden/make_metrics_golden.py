"""Golden values for MedVlp.Evaluation (BinaryMetrics, ClassificationReport, LinearProbe) from scikit-learn.

Run with Debian's Python: apt-get install -y python3-sklearn; /usr/bin/python3 tests/golden/make_metrics_golden.py
Writes tests/golden/data/metrics.json:
  binary[]: scores (with deliberate ties), labels, threshold -> roc_auc_score, average_precision_score,
            f1_score, balanced_accuracy_score, accuracy_score of (scores >= threshold).
  multiclass[]: classes, truth, probabilities -> accuracy, balanced accuracy, macro one-vs-rest AUROC
            (roc_auc_score(multi_class="ovr")), macro AP (mean of per-class average_precision_score),
            macro F1, and per-class precision/recall/F1 of the arg-max decision.
  probe[]: train X/y, test X -> predict_proba (newton-cg: scikit-learn's lbfgs stops at gradients ~1e-6, too loose for a 1e-5 comparison; the script asserts the reference gradient is below 1e-8) of make_pipeline(StandardScaler(),
            LogisticRegression(C, multi_class="multinomial", solver="newton-cg", tol=1e-12, max_iter=100000)).
"""
import json
import os

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (accuracy_score, average_precision_score, balanced_accuracy_score, f1_score,
                             precision_score, recall_score, roc_auc_score)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

rng = np.random.default_rng(20261202)
out = {"sklearn": sklearn.__version__, "binary": [], "multiclass": [], "probe": []}

for case, (n, ties, threshold) in enumerate([(50, False, 0.5), (80, True, 0.5), (33, True, 0.3), (200, False, 0.5)]):
    labels = rng.random(n) < 0.35
    scores = np.clip(labels * 0.25 + rng.random(n) * 0.8, 0, 1)
    if ties:
        scores = np.round(scores * 8) / 8  # many equal scores across both classes
    pred = scores >= threshold
    out["binary"].append({
        "scores": scores.tolist(), "labels": labels.tolist(), "threshold": threshold,
        "auroc": roc_auc_score(labels, scores), "auprc": average_precision_score(labels, scores),
        "f1": f1_score(labels, pred), "balanced_accuracy": balanced_accuracy_score(labels, pred),
        "accuracy": accuracy_score(labels, pred),
    })

for case, (n, k) in enumerate([(60, 3), (90, 4), (40, 2)]):
    truth = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 1.2 * np.eye(k)[truth]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    pred = probs.argmax(1)
    ovr_auroc = roc_auc_score(truth, probs, multi_class="ovr") if k > 2 else np.mean(
        [roc_auc_score(truth == c, probs[:, c]) for c in range(k)])
    out["multiclass"].append({
        "classes": [f"c{c}" for c in range(k)], "truth": truth.tolist(), "probabilities": probs.tolist(),
        "accuracy": accuracy_score(truth, pred), "balanced_accuracy": balanced_accuracy_score(truth, pred),
        "macro_auroc": ovr_auroc,
        "macro_auprc": float(np.mean([average_precision_score(truth == c, probs[:, c]) for c in range(k)])),
        "macro_f1": f1_score(truth, pred, average="macro"),
        "precision": precision_score(truth, pred, average=None, labels=list(range(k)), zero_division=0).tolist(),
        "recall": recall_score(truth, pred, average=None, labels=list(range(k))).tolist(),
        "f1": f1_score(truth, pred, average=None, labels=list(range(k))).tolist(),
    })

for case, (n, d, k, c) in enumerate([(120, 8, 3, 1.0), (90, 20, 2, 0.1), (150, 32, 4, 3.0), (200, 16, 3, 30.0)]):
    centers = rng.normal(size=(k, d)) * 0.8
    y = rng.integers(0, k, n)
    x = centers[y] + rng.normal(size=(n, d)) * rng.uniform(0.5, 3.0, size=d) + rng.normal(size=d) * 5
    x = x.astype(np.float32)
    x_test = (centers[rng.integers(0, k, 25)] + rng.normal(size=(25, d)) * 1.5).astype(np.float32)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, multi_class="multinomial", solver="newton-cg",
                                                               tol=1e-12, max_iter=100000))
    model.fit(x.astype(np.float64), y)
    # The reference must be converged, or the comparison measures scikit-learn's stopping rule: check the gradient
    # of the per-example objective at its solution.
    scaler, lr = model[0], model[1]
    xs = scaler.transform(x.astype(np.float64))
    w, b = lr.coef_, lr.intercept_
    if k == 2:  # scikit-learn keeps one row for two classes; predict_proba is the softmax of [-f, f]
        w, b = np.vstack([-w, w]), np.concatenate([-b, b])
    z = xs @ w.T + b
    p = np.exp(z - z.max(1, keepdims=True)); p /= p.sum(1, keepdims=True)
    grad = np.abs((p - np.eye(k)[y]).T @ xs + w / c).max() / n
    assert grad < 1e-8, f"probe case {case}: scikit-learn stopped at gradient {grad:.2e}"
    out["probe"].append({
        "c": c, "classes": k, "x": x.tolist(), "y": y.tolist(), "x_test": x_test.tolist(),
        "probabilities": model.predict_proba(x_test.astype(np.float64)).tolist(),
    })

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "metrics.json")
with open(path, "w") as f:
    json.dump(out, f)
print("wrote", path)
