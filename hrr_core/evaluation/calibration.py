"""Decision-threshold calibration on validation scores: a pure function of ``(scores, labels)``.

Every method's detector card stores the threshold this returns (:mod:`hrr_core.card`), and
evaluation reports metrics at it as well as at 0.5. Calibrate on VALIDATION data only: a
threshold chosen on test data makes the test metrics optimistic.
"""

from __future__ import annotations

import numpy as np


def calibrate_threshold(val_scores, val_labels) -> float:
    """Decision threshold maximising balanced accuracy (mean of real- and fake-accuracy) of
    ``score >= t`` on validation probabilities.

    Every t in an interval between two consecutive distinct scores gives the same predictions;
    within an optimal interval the candidate is 0.5 if it lies there, else the interval's midpoint
    (a margin on both sides). Ties between optimal intervals go to the candidate closest to 0.5.
    """
    s = np.asarray(val_scores, dtype=np.float64).ravel()
    y = np.asarray(val_labels).ravel()
    if s.shape != y.shape or s.size == 0:
        raise ValueError(f"need as many labels as scores (> 0), got {s.size} scores and {y.size} labels")
    if not np.isfinite(s).all() or s.min() < 0 or s.max() > 1:
        raise ValueError("validation scores must be finite probabilities in [0, 1]; pass sigmoid(logits)")
    if not np.isin(y, (0, 1)).all() or y.min() == y.max():
        raise ValueError(
            "validation labels must be 0 (real) and 1 (generated) with both present; "
            "balanced accuracy needs reals and fakes in the validation set"
        )
    u = np.unique(s)  # (n,) ascending; cut j predicts "generated" for scores >= u[j] (u[n] = +inf)
    s_real, s_fake = np.sort(s[y == 0]), np.sort(s[y == 1])
    cuts = np.append(u, np.inf)
    tnr = np.searchsorted(s_real, cuts, side="left") / len(s_real)  # reals below the cut
    tpr = 1 - np.searchsorted(s_fake, cuts, side="left") / len(s_fake)  # fakes at or above it
    bacc = (tnr + tpr) / 2
    lower = np.concatenate([[0.0], u])  # interval j is (lower_j, upper_j]
    upper = np.append(u, 1.0)
    inside = (lower < 0.5) & (0.5 <= upper)
    cand = np.where(inside, 0.5, (lower + upper) / 2)
    cand[-1] = max(cand[-1], np.nextafter(lower[-1], np.inf))  # above the top score, even when it is 1.0
    best = np.flatnonzero(bacc >= bacc.max() - 1e-12)
    return float(cand[best[np.argmin(np.abs(cand[best] - 0.5))]])
