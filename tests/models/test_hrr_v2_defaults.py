"""HRR v2 (issue #17) leaves v1 untouched: with every new option at its default the cache keys of
today's params.yaml configs, the config dicts and the MSR / detector tensors are exactly v1's."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from hrr_core.confutil import from_dict, set_optional_fields, to_dict
from hrr_core.losses.objective import HRRObjective
from hrr_core.models.hrr import HRRConfig, HRRDetector
from hrr_core.models.msr import MSRConfig, gaussian_blur, resize, retrospect, retrospect_each, square_crop
from hrr_core.pipeline.common import cache_folder
from hrr_core.retrospection import cache_key
from hrr_core.schema import load_config
from hrr_core.schema.models import minimum_input_size, scale_sides
from hrr_core.schema.training import TrainConfig
from hrr_core.training.loop import build_optimizer

pytestmark = pytest.mark.usefixtures("one_thread")

# Computed on the v1 code (branch hrr2 before issue #17); the first three are the folders committed
# under data/retrospection (hrr, its no_msr ablation, DIRE).
V1_KEYS = {
    "default": {
        "hrr": "038ab5fa19d8f976",
        "dire": "b896c77b797cd2d4",
        "ablation-no_msr": "61f5bd438f7742f9",
        "ablation-no_lines": "a128b7ae80730977",
        "ablation-no_noise": "ce7b06a07e71a5a4",
        "ablation-no_retrospection": "f1acaba675e787c3",
        "ablation-k1": "50bc4e68a8df40cf",
        "ablation-k2": "3f2bac2f72a84801",
        "ablation-no_afr": "038ab5fa19d8f976",
    },
    "smoke": {"hrr": "6e8385946bec5bb6", "ablation-no_msr": "33126894a143e0f9", "dire": "9df1f763216e4b9d"},
    "full": {"hrr": "bc3377ed3fb6bb61", "ablation-no_msr": "a906143ce4108725", "dire": "53c5033dc210e4b3"},
}


def _v1_rule_key(name, rep_config, cfg):
    """The key formula before the one seeding rule joined it (#14): what V1_KEYS were computed with."""
    from hrr_core.confutil import to_dict as _to_dict
    from hrr_core.data.cache import _digest, ldm_digest

    return _digest({name: _to_dict(rep_config), "ldm": ldm_digest(cfg), "seed": cfg.seed})


@pytest.mark.parametrize("profile", sorted(V1_KEYS))
def test_cache_keys_of_params_yaml_are_v1s(profile, monkeypatch):
    """The representation configs hash as v1's did (the seeding rule, since added to the key, aside)."""
    import hrr_core.pipeline.common
    import hrr_core.retrospection

    for module in (hrr_core.pipeline.common, hrr_core.retrospection):
        monkeypatch.setattr(module, "representation_key", _v1_rule_key)
    cfg = load_config("params.yaml", profile=profile)
    for method, key in V1_KEYS[profile].items():
        assert cache_folder(cfg, method, Path("root")).name == key, method
    hrr = cfg.model_config("hrr")
    assert cache_key(hrr.msr, cfg.retrospection_config()) == V1_KEYS[profile]["hrr"]
    assert set_optional_fields(hrr) == []


def test_documented_v2_settings_validate():
    text = (Path(__file__).parents[2] / "docs" / "method.md").read_text()
    block = text.split("<!-- hrr-v2-settings -->")[1].split("<!-- /hrr-v2-settings -->")[0]
    model = yaml.safe_load(block.split("```yaml")[1].split("```")[0])
    cfg = load_config("params.yaml", profile="full", overrides={"methods": {"hrr": {"model": model}}})
    hrr = cfg.model_config("hrr")
    assert hrr.msr.anchor == "native" and hrr.afr.anchors == "quantile" and hrr.fusion == "concat"
    assert cache_folder(cfg, "hrr", Path("root")).name != V1_KEYS["full"]["hrr"]


def test_v2_fields_at_defaults_are_not_serialised_and_change_the_key_when_set():
    cfg = load_config("params.yaml")
    msr, rc = cfg.model_config("hrr").msr, cfg.retrospection_config()
    v1_fields = {
        "enabled", "scale_factors", "base_size", "input_size", "max_upscale", "crop", "noise", "noise_std",
        "line_enhancement", "sharpen_gamma", "sharpen_rho", "dog_rho_fine", "dog_rho_coarse", "line_beta",
        "retrospection", "strength", "num_steps", "representation",
    }  # fmt: skip
    assert set(to_dict(msr)) == v1_fields
    assert set(to_dict(HRRConfig().afr)) == {
        "enabled", "num_anchors", "rho", "anchor_range", "tau", "init_std", "bn_momentum"
    }  # fmt: skip
    explicit = from_dict(MSRConfig, {**to_dict(msr), "anchor": "absolute", "lines_into": "classifier"}, "msr")
    assert cache_key(explicit, rc) == cache_key(msr, rc)  # the defaults written out: same key
    for change in ({"lines_into": "diffusion"}, {"line_normalise": False}):
        changed = from_dict(MSRConfig, {**to_dict(msr), **change}, "msr")
        assert cache_key(changed, rc) != cache_key(msr, rc)
        assert set_optional_fields(changed) == list(change)


# ---------------------------------------------------------------- v1 reimplemented (the code before issue #17)


def _v1_scale_hierarchy(images, cfg, generator):
    squares = [square_crop(img.float(), min(img.shape[-2:]), cfg.crop == "random", generator) for img in images]
    squares = [sq.unsqueeze(0) for sq in squares]
    base = torch.cat([resize(sq, cfg.base_size) for sq in squares])
    x_sh = base + cfg.sharpen_gamma * (base - gaussian_blur(base, cfg.sharpen_rho))
    e = (gaussian_blur(x_sh, cfg.dog_rho_fine) - gaussian_blur(x_sh, cfg.dog_rho_coarse)).abs()
    lines = e / e.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-3) if cfg.line_enhancement else None
    scales = []
    for side in scale_sides(cfg):
        x_s = torch.cat([resize(sq, side) for sq in squares])
        if cfg.noise and cfg.noise_std > 0:
            x_s = x_s + cfg.noise_std * torch.randn(x_s.shape, generator=generator)
        if lines is not None:
            x_s = x_s + cfg.line_beta * resize(lines, side)
        scales.append(square_crop(x_s.clamp(0, 1), cfg.input_size, cfg.crop == "random", generator))
    return torch.stack(scales, dim=1)


def _v1_retrospect(images, ldm, cfg, generator):
    x = _v1_scale_hierarchy(images, cfg, generator)
    x_hat = ldm.img2img(x.flatten(0, 1), cfg.strength, cfg.num_steps, generator).view_as(x)
    return torch.cat([x, (x - x_hat).abs()], dim=2)  # residual+image, as params.yaml


class Blur:
    def img2img(self, x, strength, num_steps, generator=None):
        noise = torch.randn(x.shape, generator=generator) * 0.01
        return (F.avg_pool2d(x, 3, 1, 1, count_include_pad=False) + noise).clamp(0, 1)


def _images():
    g = torch.Generator().manual_seed(1)
    return [torch.rand(3, h, w, generator=g) for h, w in ((80, 100), (64, 64), (130, 70))]


@pytest.mark.parametrize("crop", ["center", "random"])
def test_default_msr_equals_v1_bit_for_bit(crop):
    msr = from_dict(MSRConfig, {**to_dict(load_config("params.yaml").model_config("hrr").msr), "crop": crop}, "msr")
    new = retrospect(_images(), Blur(), msr, torch.Generator().manual_seed(5))
    old = _v1_retrospect(_images(), Blur(), msr, torch.Generator().manual_seed(5))
    assert new.shape == (3, 3, 6, 64, 64) and torch.equal(new, old)
    each = retrospect_each(_images(), Blur(), msr, torch.Generator().manual_seed(5))
    assert all(torch.equal(a, b) for a, b in zip(each, old.unbind(0)))
    assert minimum_input_size(msr) == 16


class Tiny(nn.Module):
    def __init__(self, c=6, d=8):
        super().__init__()
        self.out_dim = d
        self.conv = nn.Conv2d(c, d, 3, stride=2, padding=1)

    def forward(self, x):
        return torch.relu(self.conv(x)).mean(dim=(2, 3))


class _V1AFR(nn.Module):
    """The v1 AFR head, verbatim in what it computes."""

    def __init__(self, dim, cfg):
        super().__init__()
        self.cfg = cfg
        self.norm = nn.BatchNorm1d(dim, affine=False, momentum=cfg.bn_momentum)
        self.register_buffer("anchors", torch.linspace(-cfg.anchor_range, cfg.anchor_range, cfg.num_anchors))
        self.register_buffer("tau", torch.full((dim,), cfg.tau))
        self.alpha = nn.Parameter(torch.randn(dim, cfg.num_anchors) * cfg.init_std)
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, h):
        diff = self.norm(h).unsqueeze(-1) - self.anchors
        return self.bias + torch.einsum("bdm,dm->b", torch.exp(-diff.pow(2) / (2 * self.cfg.rho**2)), self.alpha)


def test_default_detector_forward_backward_step_equal_v1():
    mcfg = load_config("params.yaml").model_config("hrr")
    r = _v1_retrospect(_images(), Blur(), mcfg.msr, torch.Generator().manual_seed(5))
    labels = torch.tensor([0.0, 1.0, 1.0])
    torch.manual_seed(3)
    model = HRRDetector(mcfg, backbone=Tiny())
    torch.manual_seed(3)
    ref_backbone, ref_aux = Tiny(), nn.Linear(8, 2)
    ref_afr = _V1AFR(8, mcfg.afr)
    assert [n for n, _ in model.named_parameters()] == [
        "backbone.conv.weight", "backbone.conv.bias", "aux_head.weight", "aux_head.bias", "head.alpha", "head.bias"
    ]  # fmt: skip
    assert list(model.state_dict()) == [
        "backbone.conv.weight", "backbone.conv.bias", "aux_head.weight", "aux_head.bias", "head.alpha", "head.bias",
        "head.anchors", "head.tau", "head.norm.running_mean", "head.norm.running_var", "head.norm.num_batches_tracked",
    ]  # fmt: skip
    assert model.head.anchors.shape == (8,) and not model.needs_data_pass and model.optimizer_groups() is None
    opt = build_optimizer(model, TrainConfig(lr=0.05))
    assert len(opt.param_groups) == 1 and set(opt.param_groups[0]) >= {"lr", "params"}
    assert "proximal" not in opt.param_groups[0] and opt.param_groups[0]["lr"] == 0.05
    out = model(r)
    terms = HRRObjective(mcfg.objective)(out, labels)
    terms["loss"].backward()
    # the v1 forward, by hand
    feats = ref_backbone(r.flatten(0, 1)).view(3, 3, -1)
    ref_logits = ref_afr(feats.mean(dim=1))
    assert torch.equal(out.logits, ref_logits)
    assert torch.equal(out.scale_logits, ref_aux(feats))
    ref_terms = HRRObjective(mcfg.objective)(out.__class__(logits=ref_logits, scale_logits=ref_aux(feats)), labels)
    assert torch.equal(terms["loss"], ref_terms["loss"])
    ref_terms["loss"].backward()
    assert torch.equal(model.head.alpha.grad, ref_afr.alpha.grad)
    assert torch.equal(model.backbone.conv.weight.grad, ref_backbone.conv.weight.grad)
    # printed by the v1 code on the same inputs (tolerance for other CPUs / BLAS builds)
    assert float(r.double().sum()) == pytest.approx(72135.03247852717, rel=1e-9)
    v1_logits = [-0.032431621104478836, -2.989908171002753e-05, -0.01868271268904209]
    assert out.logits.tolist() == pytest.approx(v1_logits, rel=1e-5, abs=1e-7)
    assert float(terms["loss"].detach()) == pytest.approx(1.2434828281402588, rel=1e-6)
    assert float(model.head.alpha.grad.double().sum()) == pytest.approx(-9.301992224005517, rel=1e-5)
