"""Cross-scale consistency: the per-scale predictions should agree with their mean.

[S] HRR regularises MSR with a KL term; [G] its form:
    p_s = softmax(z_s / T)            z_s = auxiliary 2-way logits of scale s
    p_bar = mean_s p_s
    L_KL = mean_b mean_s KL(p_bar || p_s) = mean sum_c p_bar,c (log p_bar,c - log p_s,c)
It is 0 exactly when every scale predicts the same distribution.
"""

from __future__ import annotations

import math

import torch


def cross_scale_kl(scale_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """scale_logits (B, K, C) -> scalar mean_b mean_s KL(p_bar || p_s); 0 when K = 1."""
    if scale_logits.ndim != 3:
        raise ValueError(f"scale_logits must be (B, K, classes), got shape {tuple(scale_logits.shape)}")
    if temperature <= 0:
        raise ValueError(f"KL temperature must be > 0, got {temperature}")
    k = scale_logits.shape[1]
    log_p = torch.log_softmax(scale_logits.float() / temperature, dim=-1)  # (B, K, C)
    log_p_bar = torch.logsumexp(log_p, dim=1, keepdim=True) - math.log(k)  # (B, 1, C)
    kl = (log_p_bar.exp() * (log_p_bar - log_p)).sum(-1)  # (B, K)
    return kl.mean()
