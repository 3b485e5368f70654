"""Binary cross-entropy objective for single-logit detectors (fake = 1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hrr_core.models.outputs import DetectorOutput


def bce_objective(output: DetectorOutput, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """{"loss", "bce"}: mean BCE-with-logits of ``output.logits`` (B,) against ``labels`` (B,),
    floats in [0, 1] (0 = real, 1 = generated; soft labels allowed). Computed in float32."""
    logits = output.logits
    if labels.shape != logits.shape:
        raise ValueError(
            f"labels must have the logits' shape {tuple(logits.shape)}, got {tuple(labels.shape)}; "
            "pass one 0/1 label per image as a 1-D tensor"
        )
    labels = labels.to(device=logits.device, dtype=torch.float32)
    if labels.numel() and (labels.min() < 0 or labels.max() > 1):
        raise ValueError(
            f"labels must lie in [0, 1] (0 = real, 1 = generated), got range "
            f"[{labels.min().item()}, {labels.max().item()}]"
        )
    bce = F.binary_cross_entropy_with_logits(logits.float(), labels)
    return {"loss": bce, "bce": bce}
