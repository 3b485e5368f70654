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

HRR v2 options (``AFRConfig``; v1 behaviour at their defaults) [R]+[G]:
  anchors: quantile      c_jm = quantile_{(m+0.5)/M} of the standardised training feature j
                         (:meth:`fit_from_data`, once before training), anchors (d, M)
  tau_mode: adaptive     tau_j = tau * (mean_k n_k / n_j)^gamma, n_j = ||a_j|| of a ridge fit
  linear: true           f_j(u_j) = sum_m alpha_jm phi_m(u_j) + beta_j u_j, group (alpha_j, beta_j)
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


RIDGE = 1.0  # [G] ridge weight of the first fit behind the adaptive group weights


class AdditiveFeatureRefinement(nn.Module):
    """u = BN(h); f(u) = b + sum_j sum_m alpha_jm phi_m(u_j) (+ beta_j u_j). forward: (B, d) -> (B,)."""

    def __init__(self, dim: int, cfg: AFRConfig):
        super().__init__()
        if dim < 1:
            raise ValueError(f"AFR needs a feature dimension >= 1, got {dim}")
        self.cfg = cfg
        self.norm = nn.BatchNorm1d(dim, affine=False, momentum=cfg.bn_momentum)
        anchors = torch.linspace(-cfg.anchor_range, cfg.anchor_range, cfg.num_anchors)
        if cfg.anchors == "quantile":  # per dimension, set by fit_from_data (the grid until then)
            anchors = anchors.expand(dim, -1).clone()  # (d, M)
        self.register_buffer("anchors", anchors)  # (M,) shared grid c_m, or (d, M) c_jm
        self.register_buffer("tau", torch.full((dim,), cfg.tau))  # (d,) group weights tau_j
        self.alpha = nn.Parameter(torch.randn(dim, cfg.num_anchors) * cfg.init_std)  # (d, M)
        self.bias = nn.Parameter(torch.zeros(()))
        self.beta = nn.Parameter(torch.zeros(dim)) if cfg.linear else None  # (d,) linear terms

    def _phi(self, u: torch.Tensor) -> torch.Tensor:
        diff = u.unsqueeze(-1) - self.anchors  # (B, d, M)
        return torch.exp(-diff.pow(2) / (2 * self.cfg.rho**2))

    def expand(self, h: torch.Tensor) -> torch.Tensor:
        """(B, d) -> phi (B, d, M) of the normalised features."""
        return self._phi(self.norm(h))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.beta is None:
            phi = self.expand(h)  # (B, d, M)
            return self.bias + torch.einsum("bdm,dm->b", phi, self.alpha)  # (B,)
        u = self.norm(h)  # (B, d)
        return self.bias + torch.einsum("bdm,dm->b", self._phi(u), self.alpha) + u @ self.beta  # (B,)

    def component(self, h: torch.Tensor, j: int) -> torch.Tensor:
        """f_j(u_j) for each sample, (B,): what dimension j adds to the score (for plots)."""
        u = self.norm(h)
        out = self._phi(u)[:, j] @ self.alpha[j]
        return out if self.beta is None else out + u[:, j] * self.beta[j]

    def coefficients(self) -> torch.Tensor:
        """(d, M) alpha, or (d, M + 1) [alpha_j, beta_j] with linear terms: the groups."""
        return self.alpha if self.beta is None else torch.cat([self.alpha, self.beta.unsqueeze(1)], dim=1)

    def group_norms(self) -> torch.Tensor:
        """(d,) ||alpha_j||_2 (with beta_j when linear), detached."""
        return self.coefficients().detach().norm(dim=1)

    def omega(self) -> torch.Tensor:
        """Omega = sum_j tau_j ||alpha_j||_2 (scalar, differentiable)."""
        return (self.tau * self.coefficients().norm(dim=1)).sum()

    def active_dims(self) -> int:
        """How many groups alpha_j are non-zero (dimensions AFR still uses)."""
        return int((self.group_norms() > 0).sum())

    def kept_groups(self) -> list[int]:
        """Indices j of the groups still non-zero (the dimensions AFR kept), ascending."""
        return [int(j) for j in torch.nonzero(self.group_norms() > 0).flatten()]

    @torch.no_grad()
    def proximal_step(self, threshold: float) -> None:
        """Group soft-thresholding with t_j = threshold * tau_j, in place."""
        if threshold < 0:
            raise ValueError(f"proximal threshold must be >= 0, got {threshold}")
        if threshold == 0:
            return
        if self.beta is None:
            self.alpha.copy_(group_soft_threshold(self.alpha, threshold * self.tau))
            return
        shrunk = group_soft_threshold(self.coefficients(), threshold * self.tau)  # (d, M + 1)
        self.alpha.copy_(shrunk[:, :-1])
        self.beta.copy_(shrunk[:, -1])

    @torch.no_grad()
    def fit_from_data(self, h: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, float]:
        """[R]+[G] Set the data-dependent parts from training features h (N, d) (and 0/1 labels
        (N,) for adaptive weights), once before training: BatchNorm's running statistics become
        the data's; ``anchors: quantile`` puts c_jm at the (m + 0.5) / M quantiles of the
        standardised u_j; ``tau_mode: adaptive`` sets tau_j from a ridge fit. Returns a summary."""
        h = h.detach().float()
        n, d = h.shape
        if n < 2:
            raise ValueError(f"AFR's data pass needs at least 2 samples, got {n}")
        mean, var = h.mean(0), h.var(0, unbiased=False)
        self.norm.running_mean.copy_(mean.to(self.norm.running_mean))
        self.norm.running_var.copy_(h.var(0, unbiased=True).to(self.norm.running_var))
        u = (h - mean) / torch.sqrt(var + self.norm.eps)  # (N, d), what BN gives in train mode
        out = {"samples": float(n)}
        if self.cfg.anchors == "quantile":
            m = self.cfg.num_anchors
            q = (torch.arange(m, dtype=u.dtype) + 0.5) / m
            self.anchors.copy_(torch.quantile(u, q, dim=0).T.to(self.anchors))  # (d, M)
        if self.cfg.tau_mode == "adaptive":
            if labels is None:
                raise ValueError("tau_mode: adaptive needs the labels of the data pass")
            norms = self._ridge_group_norms(u, labels.float())  # (d,)
            ratio = norms.mean() / norms.clamp_min(1e-12)
            self.tau.copy_((self.cfg.tau * ratio.pow(self.cfg.tau_gamma)).clamp(max=1e3).to(self.tau))
            out["tau_min"], out["tau_max"] = float(self.tau.min()), float(self.tau.max())
        return out

    def _ridge_group_norms(self, u: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Group norms of the ridge fit y - mean(y) ~ P a, P = [phi(u) flattened, u if linear]."""
        n, d = u.shape
        cols = [self._phi(u).reshape(n, -1)]  # (N, d*M), dimension-major
        if self.beta is not None:
            cols.append(u)
        p = torch.cat(cols, dim=1).double()
        p = p - p.mean(0)
        y = (2 * labels.double() - 1).to(p.device)
        y = y - y.mean()
        if p.shape[0] < p.shape[1]:  # dual form: a = P^T (P P^T + lam I)^-1 y
            a = p.T @ torch.linalg.solve(p @ p.T + RIDGE * torch.eye(n, dtype=p.dtype, device=p.device), y)
        else:
            a = torch.linalg.solve(p.T @ p + RIDGE * torch.eye(p.shape[1], dtype=p.dtype, device=p.device), p.T @ y)
        m = self.cfg.num_anchors
        groups = a[: d * m].view(d, m)
        if self.beta is not None:
            groups = torch.cat([groups, a[d * m :].unsqueeze(1)], dim=1)
        return groups.norm(dim=1).float()
