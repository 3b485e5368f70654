"""Additive feature refinement: forward shape, proximal step, group norms, config errors."""

from __future__ import annotations

import pytest
import torch

from hrr_core.confutil import ConfigError, from_dict
from hrr_core.models.afr import AdditiveFeatureRefinement, AFRConfig, group_soft_threshold


def test_forward_shape_and_additivity():
    torch.manual_seed(0)
    afr = AdditiveFeatureRefinement(5, AFRConfig(num_anchors=4)).eval()
    h = torch.randn(7, 5)
    f = afr(h)
    assert f.shape == (7,)
    parts = torch.stack([afr.component(h, j) for j in range(5)], dim=1).sum(1)  # sum_j f_j(u_j)
    assert torch.allclose(f, afr.bias + parts, atol=1e-6)


def test_proximal_step_zeroes_small_groups_and_shrinks_the_rest_by_the_threshold():
    afr = AdditiveFeatureRefinement(3, AFRConfig(num_anchors=2))
    with torch.no_grad():
        afr.alpha.copy_(torch.tensor([[0.03, 0.04], [3.0, 4.0], [0.6, 0.8]]))  # norms 0.05, 5, 1
    afr.proximal_step(0.1)
    norms = afr.group_norms()
    assert norms[0] == 0.0 and torch.equal(afr.alpha[0], torch.zeros(2))
    assert torch.allclose(norms[1:], torch.tensor([4.9, 0.9]))
    assert torch.allclose(afr.alpha[1], torch.tensor([3.0, 4.0]) * 4.9 / 5)  # direction kept
    assert afr.active_dims() == 2


def test_weighted_thresholds_and_omega():
    alpha = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    out = group_soft_threshold(alpha, torch.tensor([0.5, 2.0]))
    assert torch.allclose(out, torch.tensor([[0.5, 0.0], [0.0, 0.0]]))
    afr = AdditiveFeatureRefinement(2, AFRConfig(num_anchors=2, tau=2.0))
    with torch.no_grad():
        afr.alpha.copy_(torch.tensor([[3.0, 4.0], [0.0, 1.0]]))
    assert torch.isclose(afr.omega(), torch.tensor(2.0 * (5 + 1)))
    afr.proximal_step(0.0)
    assert afr.active_dims() == 2
    with pytest.raises(ValueError, match="threshold"):
        afr.proximal_step(-1.0)


def test_config_checks():
    assert from_dict(AFRConfig, {"num_anchors": 4, "rho": 0.25}, "afr").num_anchors == 4
    with pytest.raises(ConfigError, match="rho"):
        AFRConfig(rho=0.0)
    with pytest.raises(ConfigError, match="afr.num_anchor"):
        from_dict(AFRConfig, {"num_anchor": 4}, "afr")
