"""Losses: correntropy vs squared (analytic and on noisy labels), cross-scale KL, the objective."""

from __future__ import annotations

import pytest
import torch

from hrr_core.losses.correntropy import correntropy_loss, squared_loss
from hrr_core.losses.kl import cross_scale_kl
from hrr_core.losses.objective import HRRObjective, ObjectiveConfig
from hrr_core.models.afr import AdditiveFeatureRefinement, AFRConfig
from hrr_core.models.outputs import DetectorOutput

pytestmark = pytest.mark.usefixtures("one_thread")


def test_correntropy_tends_to_squared_loss_and_is_bounded():
    g = torch.Generator().manual_seed(0)
    f = torch.randn(64, generator=g) * 3
    y = torch.randint(0, 2, (64,), generator=g).float() * 2 - 1
    sq = squared_loss(f, y)
    gaps = [abs(correntropy_loss(f, y, s) - sq) / sq for s in (2.0, 10.0, 100.0)]
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-2  # relative gap ~ E[r^4] / (2 sigma^2 E[r^2])
    for sigma in (0.5, 1.0, 2.0):
        far = correntropy_loss(torch.full((4,), 1e3), -torch.ones(4), sigma)
        assert far <= sigma**2 and torch.isclose(far, torch.tensor(sigma**2))
    assert correntropy_loss(y.clone(), y, 1.0) == 0
    with pytest.raises(ValueError, match="sigma"):
        correntropy_loss(f, y, 0.0)


def _interaction_problem(seed: int, n: int = 1000, d: int = 8, flip: float = 0.2):
    """[G] section 6 at small scale, with an interaction the additive model cannot represent:
    standardised features, label sign(x0 + x1 + 1.5 x0 x1), ``flip`` of the training labels flipped."""
    g = torch.Generator().manual_seed(seed)
    x, x_test = torch.randn(n, d, generator=g), torch.randn(2000, d, generator=g)
    label = lambda z: ((z[:, 0] + z[:, 1] + 1.5 * z[:, 0] * z[:, 1]) > 0).float() * 2 - 1  # noqa: E731
    y = label(x)
    y[torch.randperm(n, generator=g)[: int(flip * n)]] *= -1
    return x, y, x_test, label(x_test)


def _fit_accuracy(loss_fn, seed: int, steps: int = 200) -> float:
    x, y, x_test, y_test = _interaction_problem(seed)
    torch.manual_seed(seed)
    afr = AdditiveFeatureRefinement(x.shape[1], AFRConfig())
    opt = torch.optim.Adam(afr.parameters(), lr=0.05)
    for _ in range(steps):
        loss = loss_fn(afr(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return float(((afr.eval()(x_test) > 0).float() * 2 - 1 == y_test).float().mean())


def test_correntropy_beats_squared_loss_under_flipped_labels():
    """Measured over 15 seeds: correntropy (sigma 2) won every one, by 0.015-0.030 clean test
    accuracy (~0.90 vs ~0.87); with clean labels the two are within 0.02 either way."""
    gains = [
        _fit_accuracy(lambda f, y: correntropy_loss(f, y, 2.0), s) - _fit_accuracy(squared_loss, s) for s in (0, 1)
    ]
    assert min(gains) > 0.005 and sum(gains) / 2 > 0.01, gains


def test_kl_zero_for_identical_scales_positive_otherwise():
    same = torch.tensor([[1.0, -2.0]]).repeat(4, 3, 1)  # (B, K, 2)
    assert cross_scale_kl(same).abs() < 1e-7
    diff = same.clone()
    diff[:, 1] = torch.tensor([-1.0, 2.0])
    assert cross_scale_kl(diff) > 0.1
    assert cross_scale_kl(diff, temperature=100.0) < cross_scale_kl(diff)
    assert cross_scale_kl(torch.randn(5, 1, 2)).abs() < 1e-7  # K = 1
    with pytest.raises(ValueError, match="scale_logits"):
        cross_scale_kl(torch.randn(5, 2))


def _output(b=6, k=3):
    g = torch.Generator().manual_seed(0)
    return DetectorOutput(
        logits=torch.randn(b, generator=g, requires_grad=True),
        scale_logits=torch.randn(b, k, 2, generator=g, requires_grad=True),
        extras={"omega": torch.tensor(3.5)},
    )


@pytest.mark.parametrize("kind", ["correntropy", "cross_entropy", "squared"])
def test_objective_terms_and_weights(kind):
    out, labels = _output(), torch.tensor([0, 1, 0, 1, 1, 0]).float()
    cfg = ObjectiveConfig(afr_loss=kind, lambda_kl=0.3, lambda_ce=0.7)
    terms = HRRObjective(cfg)(out, labels)
    assert set(terms) == {"loss", "afr_loss", "kl", "aux_ce", "sparsity"}
    expected = terms["afr_loss"] + 0.3 * terms["kl"] + 0.7 * terms["aux_ce"]
    assert torch.isclose(terms["loss"], expected) and terms["sparsity"] == 3.5
    terms["loss"].backward()
    assert out.logits.grad is not None and out.scale_logits.grad is not None
    no_kl = HRRObjective(ObjectiveConfig(afr_loss=kind, kl=False, lambda_ce=0.7))(out, labels)
    assert torch.isclose(no_kl["loss"], no_kl["afr_loss"] + 0.7 * no_kl["aux_ce"]) and no_kl["kl"] > 0


def test_objective_without_scale_heads_and_bad_labels():
    out = DetectorOutput(logits=torch.zeros(4))
    terms = HRRObjective(ObjectiveConfig())(out, torch.tensor([0.0, 1.0, 1.0, 0.0]))
    assert terms["kl"] == 0 and terms["aux_ce"] == 0
    assert torch.isclose(terms["loss"], 4 * -torch.expm1(torch.tensor(-0.25)))  # sigma 2, |y - f| = 1
    with pytest.raises(ValueError, match="0 \\(real\\) or 1"):
        HRRObjective(ObjectiveConfig())(out, torch.tensor([0.0, 2.0, 1.0, 0.0]))
