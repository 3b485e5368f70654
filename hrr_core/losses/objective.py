"""HRR's objective: a :class:`DetectorOutput` and 0/1 labels in, named loss terms out.

[G] (section 7 of the method notes):
    L = L_AFR(f, y) + lambda_KL * L_KL + lambda_CE * CE_aux
    L_AFR: correntropy [P]+[R] (default) | squared | cross_entropy (BCE on sigmoid(f)), y = 2*label - 1
    L_KL: cross-scale KL of the auxiliary heads [S]+[G]
    CE_aux: mean over scales of the auxiliary heads' cross-entropy [G]
    Omega = sum_j tau_j ||alpha_j||_2 is reported as "sparsity" but not added: lambda_Omega acts
    through the proximal step (``HRRDetector.post_optimizer_step``), which is what lets groups
    reach exactly zero [R].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hrr_core.losses.correntropy import correntropy_loss, squared_loss
from hrr_core.losses.kl import cross_scale_kl
from hrr_core.models.outputs import DetectorOutput
from hrr_core.schema.models import ObjectiveConfig  # noqa: F401 (config lives in the schema)


def afr_loss(f: torch.Tensor, labels: torch.Tensor, cfg: ObjectiveConfig) -> torch.Tensor:
    """The main term on the score f (B,) and 0/1 labels (B,)."""
    if cfg.afr_loss == "cross_entropy":
        return F.binary_cross_entropy_with_logits(f, labels.to(f.dtype))
    y = 2 * labels.to(f.dtype) - 1  # (B,) in {-1, +1}, fake = +1
    if cfg.afr_loss == "squared":
        return squared_loss(f, y)
    return correntropy_loss(f, y, cfg.sigma)


def auxiliary_ce(scale_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the per-scale heads, scale_logits (B, K, 2), labels (B,) 0/1."""
    b, k, c = scale_logits.shape
    target = labels.long().unsqueeze(1).expand(b, k)  # (B, K)
    return F.cross_entropy(scale_logits.reshape(b * k, c), target.reshape(b * k))


class HRRObjective:
    """``objective(output, labels)`` -> {"loss", "afr_loss", "kl", "aux_ce", "sparsity"}."""

    def __init__(self, cfg: ObjectiveConfig):
        self.cfg = cfg

    def __call__(self, output: DetectorOutput, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        f = output.logits
        if labels.shape != f.shape:
            raise ValueError(f"labels must be (B,) like the logits {tuple(f.shape)}, got {tuple(labels.shape)}")
        if not bool(((labels == 0) | (labels == 1)).all()):
            raise ValueError("labels must be 0 (real) or 1 (generated)")
        zero = f.new_zeros(())
        main = afr_loss(f, labels, self.cfg)
        sl = output.scale_logits
        kl = cross_scale_kl(sl, self.cfg.kl_temperature) if sl is not None else zero
        ce = auxiliary_ce(sl, labels) if sl is not None else zero
        loss = main + self.cfg.lambda_ce * ce
        if self.cfg.kl:
            loss = loss + self.cfg.lambda_kl * kl
        omega = output.extras.get("omega", zero)
        sparsity = torch.as_tensor(omega, dtype=f.dtype).detach()
        return {"loss": loss, "afr_loss": main.detach(), "kl": kl.detach(), "aux_ce": ce.detach(), "sparsity": sparsity}
