"""The HRR detector: the trainable half of Hierarchical Retrospection Refinement.

Input is the cached MSR representation r (B, K, C', S, S) written by the retrospection stage
(:func:`hrr_core.models.msr.retrospect`); output is a :class:`DetectorOutput`.

    h_s = phi(r_s)                      shared backbone over the K scales          [G]
    z_s = W h_s                         auxiliary 2-way head per scale (shared W)  [S]+[G]
    h = mean_s h_s  (or concat_s h_s)   fusion                                     [G]
    f = AFR(h)  (or a linear head)      additive feature refinement                [P]+[R]+[G]

The losses (AFR loss, cross-scale KL of the z_s, auxiliary CE) are computed by
:class:`hrr_core.losses.objective.HRRObjective`; the group sparsity acts through
:meth:`HRRDetector.post_optimizer_step`, which the training loop calls after every optimiser step.
"""

from __future__ import annotations

import torch
from torch import nn

from hrr_core.models.afr import AdditiveFeatureRefinement
from hrr_core.models.backbones import build_backbone
from hrr_core.models.outputs import DetectorOutput
from hrr_core.schema.models import HRRConfig  # noqa: F401 (config lives in the schema)


class LinearHead(nn.Module):
    """The "AFR off" ablation: f = w^T BatchNorm(h) + b on the same normalised u as AFR."""

    def __init__(self, dim: int, bn_momentum: float = 0.1):
        super().__init__()
        self.norm = nn.BatchNorm1d(dim, affine=False, momentum=bn_momentum)
        self.linear = nn.Linear(dim, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.linear(self.norm(h)).squeeze(-1)  # (B,)


class HRRDetector(nn.Module):
    """Shared backbone over scales -> per-scale heads + fusion -> AFR (or linear) score.

    ``backbone``: an already built module with ``.out_dim`` (tests inject tiny ones); built
    from ``cfg.backbone`` when None.
    """

    def __init__(self, cfg: HRRConfig, backbone: nn.Module | None = None):
        super().__init__()
        self.cfg = cfg
        self.backbone = build_backbone(cfg.backbone) if backbone is None else backbone
        feat_dim = int(self.backbone.out_dim)
        self.aux_head = nn.Linear(feat_dim, 2)  # W, shared by all scales
        fused_dim = feat_dim * cfg.num_scales if cfg.fusion == "concat" else feat_dim
        if cfg.afr.enabled:
            self.head: nn.Module = AdditiveFeatureRefinement(fused_dim, cfg.afr)
        else:
            self.head = LinearHead(fused_dim, cfg.afr.bn_momentum)

    @property
    def afr(self) -> AdditiveFeatureRefinement | None:
        """The AFR head, or None when ``afr.enabled`` is false."""
        return self.head if isinstance(self.head, AdditiveFeatureRefinement) else None

    def _check_input(self, r: torch.Tensor) -> torch.Tensor:
        k, c = self.cfg.num_scales, self.cfg.backbone.in_channels
        if r.ndim == 4 and k == 1:
            r = r.unsqueeze(1)  # (B, 1, C', S, S)
        if r.ndim != 5 or r.shape[1] != k or r.shape[2] != c:
            raise ValueError(
                f"HRRDetector expects the MSR representation (B, {k}, {c}, S, S), got "
                f"{tuple(r.shape)}; check that the cache was built with the same msr config"
            )
        return r

    def forward(self, r: torch.Tensor) -> DetectorOutput:
        """r (B, K, C', S, S) -> DetectorOutput(logits (B,), scale_logits (B, K, 2), features (B, D'))."""
        r = self._check_input(r)
        b, k = r.shape[:2]
        feats = self.backbone(r.flatten(0, 1))  # (B*K, D)
        feats = feats.view(b, k, -1)  # (B, K, D)
        scale_logits = self.aux_head(feats)  # (B, K, 2)
        fused = feats.mean(dim=1) if self.cfg.fusion == "mean" else feats.flatten(1)  # (B, D) or (B, K*D)
        logits = self.head(fused)  # (B,)
        return DetectorOutput(logits=logits, scale_logits=scale_logits, features=fused, extras=self._extras(fused))

    def _extras(self, fused: torch.Tensor) -> dict[str, torch.Tensor | float]:
        afr = self.afr
        if afr is None:
            return {"active_dims": float(fused.shape[1])}
        with torch.no_grad():
            return {"active_dims": float(afr.active_dims()), "omega": afr.omega()}

    def train_metrics(self) -> dict[str, float]:
        """Logged by the training loop once per epoch: surviving AFR groups and Omega."""
        afr = self.afr
        if afr is None:
            return {}
        with torch.no_grad():
            return {"active_dims": float(afr.active_dims()), "omega": float(afr.omega())}

    @torch.no_grad()
    def post_optimizer_step(self, lr: float) -> None:
        """Proximal group soft-threshold with threshold lr * lambda_Omega * tau_j [R]+[G].

        Call after every optimiser step with the learning rate of the head's parameter group.
        No-op when AFR is off or lambda_Omega is 0.
        """
        if lr < 0:
            raise ValueError(f"post_optimizer_step needs the current learning rate >= 0, got {lr}")
        afr, lam = self.afr, self.cfg.objective.lambda_omega
        if afr is not None and lam > 0:
            afr.proximal_step(lr * lam)
