"""Model and objective builders by method kind: the one place the stages look them up.

Kinds: ``classifier`` (the plain CNN), ``hrr`` (HRRDetector over cached MSR representations),
``baseline`` (hrr_core.models.baselines: trainable ones are nn.Modules trained by the same
loop with BCE; scorers such as the spectrum logistic regression are fitted directly)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from hrr_core.models.outputs import DetectorOutput

KINDS = ("classifier", "hrr", "baseline")


def is_scorer(kind: str, baseline: str | None) -> bool:
    """True for detectors fitted without the training loop (``fit``/``score``/``save``/``load``)."""
    if kind != "baseline":
        return False
    from hrr_core.models.baselines import BASELINE_KINDS

    return BASELINE_KINDS[baseline] == "scorer"


def build_model(kind: str, cfg, baseline: str | None = None):
    """The detector of ``kind`` built from its config dataclass."""
    if kind == "classifier":
        from hrr_core.models.classifier import BinaryClassifier

        return BinaryClassifier(cfg)
    if kind == "hrr":
        from hrr_core.models.hrr import HRRDetector

        return HRRDetector(cfg)
    if kind == "baseline":
        from hrr_core.models.baselines import build_baseline

        return build_baseline(baseline, cfg)
    raise ValueError(f"unknown method kind {kind!r}; known: {', '.join(KINDS)}")


def build_objective(kind: str, cfg) -> Callable[[DetectorOutput, torch.Tensor], dict[str, torch.Tensor]]:
    """The training objective of ``kind``: named loss terms with a ``loss`` key."""
    if kind in ("classifier", "baseline"):
        from hrr_core.losses.classification import bce_objective

        return bce_objective
    if kind == "hrr":
        from hrr_core.losses.objective import HRRObjective

        return HRRObjective(cfg.objective)
    raise ValueError(f"unknown method kind {kind!r}; known: {', '.join(KINDS)}")


def train_transform(kind: str, cfg, baseline: str | None, seed: int):
    """Train-time image augmentation of a method (CNNSpot's blur + JPEG), or None."""
    if kind == "baseline" and baseline == "cnnspot":
        import numpy as np

        from hrr_core.models.baselines import cnnspot_augment

        rng = np.random.default_rng(seed)
        return lambda arr: cnnspot_augment(arr, rng, cfg.augment)
    return None
