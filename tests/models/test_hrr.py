"""HRRDetector: forward/backward with tiny backbones, switches, config checks, a 2-step loop."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hrr_core.confutil import ConfigError, from_dict
from hrr_core.losses.objective import HRRObjective
from hrr_core.models.backbones import BackboneConfig
from hrr_core.models.hrr import HRRConfig, HRRDetector
from hrr_core.models.msr import MSRConfig

MSR = dict(base_size=64, input_size=32)


pytestmark = pytest.mark.usefixtures("one_thread")


class TinyBackbone(nn.Module):
    """Stand-in: conv + global pool, (B, C, H, W) -> (B, out_dim)."""

    def __init__(self, in_channels: int = 3, out_dim: int = 8):
        super().__init__()
        self.out_dim = out_dim
        self.conv = nn.Conv2d(in_channels, out_dim, 3, stride=2, padding=1)

    def forward(self, x):
        return torch.relu(self.conv(x)).mean(dim=(2, 3))  # (B, out_dim)


def _cfg(**over) -> HRRConfig:
    base = {
        "backbone": {"name": "small_resnet", "pretrained": False, "width": 4},
        "msr": MSR,
        "afr": {"num_anchors": 4},
    }
    for key, value in over.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return from_dict(HRRConfig, base, "model")


def _batch(cfg: HRRConfig, b: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    r = torch.rand(b, cfg.num_scales, cfg.backbone.in_channels, 32, 32, generator=g)  # (B, K, C', S, S)
    return r, torch.tensor([0.0, 1.0] * (b // 2))


@pytest.mark.parametrize(
    "over",
    [
        {},
        {"fusion": "concat"},
        {"afr": {"enabled": False}},
        {"msr": {"enabled": False}},
        {"msr": {"scale_factors": [1.0, 2.0]}},
        {"msr": {"representation": "residual+image"}, "backbone": {"in_channels": 6}},
    ],
)
def test_forward_backward_with_small_resnet(over):
    cfg = _cfg(**over)
    model = HRRDetector(cfg)
    r, labels = _batch(cfg)
    out = model(r)
    k = cfg.num_scales
    assert out.logits.shape == (4,) and out.scale_logits.shape == (4, k, 2)
    d = model.backbone.out_dim * (k if cfg.fusion == "concat" else 1)
    assert out.features.shape == (4, d) and out.extras["active_dims"] == d
    terms = HRRObjective(cfg.objective)(out, labels)
    terms["loss"].backward()
    assert all(p.grad is not None for p in model.backbone.parameters() if p.requires_grad)


def test_config_checks_channels_and_keys():
    with pytest.raises(ConfigError, match="backbone.in_channels"):
        _cfg(msr={"representation": "residual+image"})
    with pytest.raises(ConfigError, match="model.objective.afr_los"):
        _cfg(objective={"afr_los": "squared"})
    assert _cfg(msr={"enabled": False}).num_scales == 1
    assert (
        HRRConfig(backbone=BackboneConfig(pretrained=False, name="small_resnet"), msr=MSRConfig(**MSR)).num_scales == 3
    )


def test_wrong_input_shape_is_a_clear_error():
    cfg = _cfg()
    model = HRRDetector(cfg, backbone=TinyBackbone())
    with pytest.raises(ValueError, match=r"\(B, 3, 3, S, S\)"):
        model(torch.rand(2, 2, 3, 32, 32))
    single = HRRDetector(_cfg(msr={"enabled": False}), backbone=TinyBackbone())
    assert single(torch.rand(2, 3, 32, 32)).logits.shape == (2,)  # K = 1 accepts (B, C, S, S)


def test_post_optimizer_step_prunes_only_when_asked():
    for lam, afr_on, expect_zero in [(1.0, True, True), (0.0, True, False), (1.0, False, False)]:
        model = HRRDetector(_cfg(objective={"lambda_omega": lam}, afr={"enabled": afr_on}), backbone=TinyBackbone())
        before = [p.clone() for p in model.head.parameters()]
        model.post_optimizer_step(lr=1.0)  # threshold 1.0 >> initial group norms (~0.02)
        if expect_zero:
            assert model.afr.active_dims() == 0
        else:
            assert all(torch.equal(a, b) for a, b in zip(before, model.head.parameters()))


def test_two_step_training_loop_reduces_loss_and_changes_weights():
    torch.manual_seed(0)
    cfg = _cfg(objective={"lambda_omega": 0.01})
    model = HRRDetector(cfg, backbone=TinyBackbone())
    objective = HRRObjective(cfg.objective)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    r, labels = _batch(cfg, b=8)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    losses = []
    for step in range(3):  # two optimiser steps, then the loss they lead to
        terms = objective(model(r), labels)
        losses.append(float(terms["loss"].detach()))
        if step == 2:
            break
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
        model.post_optimizer_step(lr=opt.param_groups[0]["lr"])
    assert losses[2] < losses[0], losses
    assert not torch.equal(start["head.alpha"], model.state_dict()["head.alpha"])
    assert not torch.equal(start["backbone.conv.weight"], model.state_dict()["backbone.conv.weight"])
    model.eval()
    out = model(r)
    assert out.extras["active_dims"] == model.afr.active_dims()  # the live AFR, not a stale count
    assert float(out.extras["omega"]) == pytest.approx(float(model.afr.omega()))
    assert model.train_metrics()["active_dims"] == out.extras["active_dims"]
