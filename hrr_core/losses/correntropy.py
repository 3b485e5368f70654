"""Regression-style losses on the additive score f with labels y in {-1, +1} (fake = +1).

[R] the correntropy-induced loss (Welsch loss) used by CSAM:
    L_C(f, y) = mean_i sigma^2 [1 - exp(-(y_i - f_i)^2 / sigma^2)]
It is bounded by sigma^2, so a mislabelled or outlying image cannot dominate the fit, and as
sigma -> inf it tends to the squared loss mean_i (y_i - f_i)^2 (Taylor: 1 - exp(-a) ~ a).
"""

from __future__ import annotations

import torch


def _check_pair(f: torch.Tensor, y: torch.Tensor) -> None:
    if f.shape != y.shape:
        raise ValueError(f"scores and labels need the same shape, got {tuple(f.shape)} and {tuple(y.shape)}")


def correntropy_loss(f: torch.Tensor, y_pm1: torch.Tensor, sigma: float) -> torch.Tensor:
    """[R] mean sigma^2 (1 - exp(-(y - f)^2 / sigma^2)); f, y (B,), y in {-1, +1}. Scalar."""
    if sigma <= 0:
        raise ValueError(f"correntropy sigma must be > 0, got {sigma}")
    _check_pair(f, y_pm1)
    r2 = (y_pm1.to(f.dtype) - f).pow(2)  # (B,)
    return (sigma**2 * -torch.expm1(-r2 / sigma**2)).mean()


def squared_loss(f: torch.Tensor, y_pm1: torch.Tensor) -> torch.Tensor:
    """mean (y - f)^2; f, y (B,), y in {-1, +1}. Scalar; the sigma -> inf limit of correntropy."""
    _check_pair(f, y_pm1)
    return (y_pm1.to(f.dtype) - f).pow(2).mean()
