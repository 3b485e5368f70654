"""Sanity checks on a trained method's validation scores, run by the train stage so that a
detector that learned nothing (or learned the wrong direction) fails loudly instead of being
reported as a result."""

from __future__ import annotations

from typing import Any

import numpy as np

CHANCE_MARGIN = 0.02


def check_above_chance(method: str, val_ap: float, val_labels: Any, margin: float = CHANCE_MARGIN) -> None:
    """Raise ``ValueError`` unless ``val_ap`` > chance + ``margin``, chance AP being the positive
    rate of ``val_labels`` (1 = generated): a random or constant score has AP = positive rate,
    an inverted one less. Also raises when the labels hold a single class (AP is then undefined)."""
    y = np.asarray(val_labels, dtype=np.float64).reshape(-1)
    if y.size == 0 or not np.isin(y, (0.0, 1.0)).all() or len(np.unique(y)) < 2:
        raise ValueError(
            f"{method}: the validation labels must be 0 (real) / 1 (generated) with both classes present "
            f"to judge its AP, got {y.size} labels with values {np.unique(y)}; check the val split"
        )
    if not np.isfinite(val_ap):
        raise ValueError(f"{method}: validation AP is {val_ap}; the scores hold NaN or inf: check the model's outputs")
    chance = float(y.mean())
    if val_ap <= chance + margin:
        raise ValueError(
            f"{method}: validation AP {val_ap:.3f} is at or below chance ({chance:.3f} = share of generated images, "
            f"+ margin {margin}): the detector learned nothing or the wrong direction. Check the score's sign "
            "(a calibration fitted with a negative slope; for scorers, calibration.json), whether it trained at all "
            "(steps, lr, loss curve in history.csv), that label 1 means generated in the manifest, and that the "
            "validation generators are the ones it was trained for."
        )
