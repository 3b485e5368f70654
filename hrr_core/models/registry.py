"""Model and objective builders by method kind: the one place the stages look them up."""

from __future__ import annotations

from collections.abc import Callable

import torch

from hrr_core.models.outputs import DetectorOutput


def build_model(kind: str, cfg) -> torch.nn.Module:
    """The detector of ``kind`` (``classifier`` | ``hrr``) built from its config dataclass."""
    if kind == "classifier":
        from hrr_core.models.classifier import BinaryClassifier

        return BinaryClassifier(cfg)
    if kind == "hrr":
        from hrr_core.models.hrr import HRRDetector

        return HRRDetector(cfg)
    raise ValueError(f"unknown method kind {kind!r}; known: classifier, hrr")


def build_objective(kind: str, cfg) -> Callable[[DetectorOutput, torch.Tensor], dict[str, torch.Tensor]]:
    """The training objective of ``kind``: named loss terms with a ``loss`` key."""
    if kind == "classifier":
        from hrr_core.losses.classification import bce_objective

        return bce_objective
    if kind == "hrr":
        from hrr_core.losses.objective import HRRObjective

        return HRRObjective(cfg.objective)
    raise ValueError(f"unknown method kind {kind!r}; known: classifier, hrr")
