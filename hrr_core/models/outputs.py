"""Typed model outputs: every detector returns a :class:`DetectorOutput`."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class DetectorOutput:
    """What a detector's ``forward`` returns.

    logits: (B,) real-valued score, larger = more likely generated (fake = positive class).
        ``sigmoid(logits)`` is the probability of being generated.
    scale_logits: (B, K, 2) per-scale two-way logits of HRR's auxiliary heads (K = scales),
        or None for single-scale models.
    features: (B, D) the fused feature the final head saw, or None.
    extras: anything else worth logging (tensors or floats), never needed by the loop.
    """

    logits: torch.Tensor
    scale_logits: torch.Tensor | None = None
    features: torch.Tensor | None = None
    extras: dict[str, torch.Tensor | float] = field(default_factory=dict)

    @property
    def probs(self) -> torch.Tensor:
        """(B,) probability of being generated."""
        return torch.sigmoid(self.logits.float())
