"""Protocol-v2 statistics: operating points chosen on validation, calibration error, and
intervals that resample source photos (cluster bootstrap), alone or paired between methods.

Images cut from one photo are not independent: a bootstrap over images makes intervals far
too narrow when the test split has a few dozen photos. Every interval here redraws whole
photos (each with all its crops and the fakes made from them) with replacement, and a paired
comparison applies the same redraw to both methods' scores of the same images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

# every per-set metric of the v2 tables; acc/real_acc/fake_acc are at the calibrated threshold
V2_METRICS = (
    "acc",
    "real_acc",
    "fake_acc",
    "tpr_at_fpr",
    "fpr_at_fpr",
    "ap",
    "auc",
    "ece",
    "acc_at05",
    "real_acc_at05",
    "fake_acc_at05",
    "oracle_acc",
)


def threshold_at_fpr(real_scores, fpr: float) -> float:
    """The lowest threshold at which at most ``fpr`` of ``real_scores`` (validation reals) score
    ``>= t``: the operating point of "TPR at ``fpr`` FPR", chosen without a test label."""
    s = np.sort(np.asarray(real_scores, dtype=np.float64).ravel())[::-1]
    if s.size == 0:
        raise ValueError("threshold_at_fpr needs at least one real score")
    k = int(np.floor(fpr * s.size))  # reals allowed at or above the threshold
    if k >= s.size:
        return float(s[-1])
    return float(np.nextafter(s[k], np.inf))


def expected_calibration_error(scores, labels, bins: int = 10) -> float:
    """ECE of probabilities ``scores`` (fake = 1): bin-size-weighted mean |fraction fake - mean
    score| over ``bins`` equal-width bins of [0, 1]."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels, dtype=np.float64).ravel()
    if s.size == 0:
        return float("nan")
    which = np.minimum((s * bins).astype(int), bins - 1)
    total = 0.0
    for b in np.unique(which):
        m = which == b
        total += m.sum() * abs(y[m].mean() - s[m].mean())
    return float(total / s.size)


def ranking_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """AP (scikit-learn's step definition over distinct thresholds), AUC (ties count half) and
    the oracle ACC in one sort: the bootstrap calls this thousands of times."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    n_pos, n = int(y.sum()), len(y)
    if n_pos == 0 or n_pos == n:
        return {"ap": float("nan"), "auc": float("nan"), "oracle_acc": float(max(n_pos, n - n_pos) / max(n, 1))}
    last = np.flatnonzero(np.r_[s[1:] != s[:-1], True])  # last index of each run of equal scores
    tps = np.cumsum(y)[last]
    fps = last + 1 - tps
    precision, recall = tps / (last + 1), tps / n_pos
    ap = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    fpr = fps / (n - n_pos)
    auc = float(np.trapezoid(np.r_[0.0, recall], np.r_[0.0, fpr]))
    correct = tps + (n - n_pos - fps)  # predicting "fake" down to each run's end
    oracle = float(max(correct.max(), n - n_pos) / n)
    return {"ap": ap, "auc": auc, "oracle_acc": oracle}


def _rates(scores: np.ndarray, labels: np.ndarray, t: float) -> tuple[float, float, float]:
    pred, fake = scores >= t, labels == 1
    real_acc = float((~pred[~fake]).mean()) if (~fake).any() else float("nan")
    fake_acc = float(pred[fake].mean()) if fake.any() else float("nan")
    return float((pred == fake).mean()), real_acc, fake_acc


def v2_metrics(scores, labels, t_cal: float, t_fpr: float, fixed: float = 0.5, ece_bins: int = 10) -> dict:
    """:data:`V2_METRICS` of one test set: ACC/real-ACC/fake-ACC at the validation-calibrated
    threshold ``t_cal``, TPR (and the test FPR) at the validation-FPR threshold ``t_fpr``, AP,
    AUC, ECE, the ``*_at05`` numbers at ``fixed`` and the oracle ACC (a diagnostic only)."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel().astype(int)
    acc, real_acc, fake_acc = _rates(s, y, t_cal)
    _, real_fpr, tpr = _rates(s, y, t_fpr)
    acc05, real05, fake05 = _rates(s, y, fixed)
    ranking = ranking_metrics(s, y)
    return {
        "acc": acc,
        "real_acc": real_acc,
        "fake_acc": fake_acc,
        "tpr_at_fpr": tpr,
        "fpr_at_fpr": 1.0 - real_fpr,
        "ap": ranking["ap"],
        "auc": ranking["auc"],
        "ece": expected_calibration_error(s, y, ece_bins),
        "acc_at05": acc05,
        "real_acc_at05": real05,
        "fake_acc_at05": fake05,
        "oracle_acc": ranking["oracle_acc"],
    }


def cluster_draws(clusters: Sequence, n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(codes (N,), counts (n_boot, C)): each row's cluster code and, per bootstrap draw, how
    often each of the C clusters was drawn (C draws with replacement)."""
    _, codes = np.unique(np.asarray(clusters, dtype=str), return_inverse=True)
    n_clusters = int(codes.max()) + 1 if len(codes) else 0
    rng = np.random.default_rng(seed)
    counts = np.zeros((n_boot, n_clusters), dtype=np.int64)
    for b in range(n_boot):
        counts[b] = np.bincount(rng.integers(0, n_clusters, n_clusters), minlength=n_clusters)
    return codes, counts


def resample(codes: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Row indices of one draw: each row repeated as often as its cluster was drawn."""
    return np.repeat(np.arange(len(codes)), counts[codes])


def percentile_ci(values, level: float = 0.95) -> tuple[float, float]:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    return float(np.percentile(v, lo)), float(np.percentile(v, hi))


def cluster_bootstrap(
    statistic: Callable[[Callable[[np.ndarray], np.ndarray]], dict],
    clusters: Sequence,
    n_boot: int,
    seed: int,
    level: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of every value of ``statistic(pick)`` over ``n_boot`` photo redraws.

    ``clusters`` names the source photo of each row of one shared table; ``statistic`` gets
    ``pick(rows) -> row indices of this draw`` restricted to ``rows`` (a boolean mask or index
    array into that table), so a macro mean over test sets that share photos redraws the same
    photos in every set, and a paired difference redraws both methods identically."""
    codes, counts = cluster_draws(clusters, n_boot, seed)
    draws: dict[str, list[float]] = {}
    for c in counts:
        weights = c[codes]  # (N,) how often each row is drawn

        def pick(rows, weights=weights):
            rows = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows)
            return np.repeat(rows, weights[rows])

        for k, v in statistic(pick).items():
            draws.setdefault(k, []).append(v)
    return {k: percentile_ci(v, level) for k, v in draws.items()}
