"""Detection metrics, fake = positive class: pure functions of ``(scores, labels)``.

ACC at a threshold (0.5 by default, the field's convention), real-ACC and fake-ACC
(ACC alone hides a collapsed detector), AP and AUC (scikit-learn), and the oracle-threshold
ACC, a diagnostic only: it picks the best threshold on the test data itself.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

METRIC_NAMES = ("acc", "real_acc", "fake_acc", "ap", "auc", "oracle_acc")


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel()
    if scores.shape != labels.shape:
        raise ValueError(f"scores and labels differ in length: {scores.shape[0]} vs {labels.shape[0]}")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"labels must be 0 (real) or 1 (generated), got values {np.unique(labels)[:5]}")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or inf; the model diverged or an input was broken")
    return scores, labels.astype(int)


def oracle_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Best accuracy over every threshold (diagnostic only: it looks at the test labels)."""
    scores, labels = _check(scores, labels)
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    # predicting "fake" for the top k: correct = fakes in top k + reals outside it
    fakes_top = np.concatenate([[0], np.cumsum(y)])
    reals_rest = (y == 0).sum() - np.concatenate([[0], np.cumsum(1 - y)])
    correct = fakes_top + reals_rest
    # only cut between distinct scores
    valid = np.concatenate([[True], s[1:] != s[:-1], [True]])
    return float(correct[valid].max() / len(y))


def binary_metrics(scores: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """All of :data:`METRIC_NAMES` for probabilities ``scores`` (fake = 1).

    AP and AUC are NaN when only one class is present (they are undefined then)."""
    scores, labels = _check(scores, labels)
    pred = scores >= threshold
    real, fake = labels == 0, labels == 1
    both = real.any() and fake.any()
    return {
        "acc": float((pred == fake).mean()) if len(labels) else float("nan"),
        "real_acc": float((~pred[real]).mean()) if real.any() else float("nan"),
        "fake_acc": float(pred[fake].mean()) if fake.any() else float("nan"),
        "ap": float(average_precision_score(labels, scores)) if both else float("nan"),
        "auc": float(roc_auc_score(labels, scores)) if both else float("nan"),
        "oracle_acc": oracle_accuracy(scores, labels) if len(labels) else float("nan"),
    }


def bootstrap_ci(
    scores: np.ndarray,
    labels: np.ndarray,
    threshold: float = 0.5,
    n_boot: int = 200,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval of every metric, resampling reals and fakes separately
    (stratified) so each resample keeps the class balance of the test set."""
    scores, labels = _check(scores, labels)
    rng = np.random.default_rng(seed)
    idx_real, idx_fake = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    draws = {name: [] for name in METRIC_NAMES}
    for _ in range(n_boot):
        idx = np.concatenate([rng.choice(idx_real, len(idx_real)), rng.choice(idx_fake, len(idx_fake))]).astype(int)
        for name, value in binary_metrics(scores[idx], labels[idx], threshold).items():
            draws[name].append(value)
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    return {name: (float(np.nanpercentile(v, lo)), float(np.nanpercentile(v, hi))) for name, v in draws.items()}


def roc_points(scores: np.ndarray, labels: np.ndarray, max_points: int = 200) -> list[dict[str, float]]:
    """ROC curve as records ``{fpr, tpr, threshold}``, thinned to at most ``max_points``."""
    scores, labels = _check(scores, labels)
    fpr, tpr, thr = roc_curve(labels, scores)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(max_points, len(fpr))).round().astype(int))
    return [{"fpr": float(fpr[i]), "tpr": float(tpr[i]), "threshold": float(min(thr[i], 1.0))} for i in keep]


def pr_points(scores: np.ndarray, labels: np.ndarray, max_points: int = 200) -> list[dict[str, float]]:
    """Precision-recall curve (fake = positive) as records ``{recall, precision}``, thinned."""
    from sklearn.metrics import precision_recall_curve

    scores, labels = _check(scores, labels)
    precision, recall, _ = precision_recall_curve(labels, scores)
    keep = np.unique(np.linspace(0, len(recall) - 1, min(max_points, len(recall))).round().astype(int))
    return [{"recall": float(recall[i]), "precision": float(precision[i])} for i in keep]
