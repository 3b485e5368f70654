"""Additive Feature Refinement (AFR): a correntropy sparse additive machine on fused features.

[P] the principle (refine features with a sparse additive model trained with a correntropy
loss, so that only generation-relevant dimensions survive); [R] CSAM, the correntropy-based
sparse additive machine; [G] the details: BatchNorm, Gaussian RBF components on a fixed anchor
grid, group soft-thresholding as a proximal step.

    u = BatchNorm(h)                                         (B, d), affine=False      [G]
    phi_m(u_j) = exp(-(u_j - c_m)^2 / (2 rho^2))              M anchors c_m per dim     [G]
    f(u) = b + sum_j sum_m alpha_jm phi_m(u_j)                additive score            [R]
    Omega = sum_j tau_j ||alpha_j||_2                         group sparsity            [R]
    prox: alpha_j <- alpha_j * max(0, 1 - t tau_j / ||alpha_j||_2)                      [G]

The model only computes f and Omega; the loss lives in :mod:`hrr_core.losses`, and the training
loop applies :meth:`AdditiveFeatureRefinement.proximal_step` after each optimiser step (through
:meth:`hrr_core.models.hrr.HRRDetector.post_optimizer_step`).
"""

from __future__ import annotations

import torch
from torch import nn

from hrr_core.schema.models import AFRConfig  # noqa: F401 (config lives in the schema)


def group_soft_threshold(alpha: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """Proximal operator of sum_j t_j ||alpha_j||_2 for alpha (d, M), thresholds (d,): rows with
    norm <= t_j become exactly 0, the others keep their direction and lose exactly t_j of norm."""
    norms = alpha.norm(dim=1, keepdim=True)  # (d, 1)
    scale = (1 - thresholds.unsqueeze(1) / norms.clamp_min(1e-12)).clamp_min(0)  # (d, 1)
    return alpha * scale


class AdditiveFeatureRefinement(nn.Module):
    """u = BN(h); f(u) = b + sum_j sum_m alpha_jm phi_m(u_j). forward: (B, d) -> (B,)."""

    def __init__(self, dim: int, cfg: AFRConfig):
        super().__init__()
        if dim < 1:
            raise ValueError(f"AFR needs a feature dimension >= 1, got {dim}")
        self.cfg = cfg
        self.norm = nn.BatchNorm1d(dim, affine=False, momentum=cfg.bn_momentum)
        anchors = torch.linspace(-cfg.anchor_range, cfg.anchor_range, cfg.num_anchors)
        self.register_buffer("anchors", anchors)  # (M,) shared grid c_m
        self.register_buffer("tau", torch.full((dim,), cfg.tau))  # (d,) group weights tau_j
        self.alpha = nn.Parameter(torch.randn(dim, cfg.num_anchors) * cfg.init_std)  # (d, M)
        self.bias = nn.Parameter(torch.zeros(()))

    def expand(self, h: torch.Tensor) -> torch.Tensor:
        """(B, d) -> phi (B, d, M) of the normalised features."""
        u = self.norm(h)  # (B, d)
        diff = u.unsqueeze(-1) - self.anchors  # (B, d, M)
        return torch.exp(-diff.pow(2) / (2 * self.cfg.rho**2))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        phi = self.expand(h)  # (B, d, M)
        return self.bias + torch.einsum("bdm,dm->b", phi, self.alpha)  # (B,)

    def component(self, h: torch.Tensor, j: int) -> torch.Tensor:
        """f_j(u_j) for each sample, (B,): what dimension j adds to the score (for plots)."""
        return self.expand(h)[:, j] @ self.alpha[j]

    def group_norms(self) -> torch.Tensor:
        """(d,) ||alpha_j||_2, detached."""
        return self.alpha.detach().norm(dim=1)

    def omega(self) -> torch.Tensor:
        """Omega = sum_j tau_j ||alpha_j||_2 (scalar, differentiable)."""
        return (self.tau * self.alpha.norm(dim=1)).sum()

    def active_dims(self) -> int:
        """How many groups alpha_j are non-zero (dimensions AFR still uses)."""
        return int((self.group_norms() > 0).sum())

    @torch.no_grad()
    def proximal_step(self, threshold: float) -> None:
        """Group soft-thresholding with t_j = threshold * tau_j, in place."""
        if threshold < 0:
            raise ValueError(f"proximal threshold must be >= 0, got {threshold}")
        if threshold == 0:
            return
        self.alpha.copy_(group_soft_threshold(self.alpha, threshold * self.tau))
