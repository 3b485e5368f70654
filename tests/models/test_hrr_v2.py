"""HRR v2 options (issue #17): native-anchored scales and tiles, the line map into the diffusion
only, fixed-scale lines, and an AFR that refines (own lr, quantile anchors, adaptive weights,
pruning report, linear terms)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hrr_core.confutil import ConfigError, from_dict
from hrr_core.data.cache import _bucket
from hrr_core.losses.objective import HRRObjective
from hrr_core.models.afr import AdditiveFeatureRefinement
from hrr_core.models.hrr import HRRConfig, HRRDetector
from hrr_core.models.msr import (
    MSRConfig,
    edge_map,
    grid_starts,
    retrospect,
    retrospect_each,
    scale_hierarchy,
    tile_windows,
)
from hrr_core.schema.models import AFRConfig, minimum_input_size
from hrr_core.schema.training import TrainConfig
from hrr_core.training.loop import build_optimizer, proximal_lr

pytestmark = pytest.mark.usefixtures("one_thread")

NATIVE = dict(anchor="native", scale_factors=(0.5, 1.0, 2.0), input_size=32, retrospection=False)
BACKBONE = {"name": "small_resnet", "pretrained": False, "width": 4}


def _hrr(**over) -> HRRConfig:
    """A small absolute-anchor HRR config with ``over`` replacing whole sections."""
    return from_dict(HRRConfig, {"backbone": BACKBONE, "msr": {"base_size": 64, "input_size": 32}, **over}, "model")


def _img(h, w, seed=0):
    return torch.rand(3, h, w, generator=torch.Generator().manual_seed(seed))


class Recorder:
    """Stand-in LDM that records its input and returns a fixed blur of it."""

    def __init__(self):
        self.inputs = []

    def img2img(self, x, strength, num_steps, generator=None):
        self.inputs.append(x.clone())
        return torch.nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False)


class Tiny(nn.Module):
    def __init__(self, c=3, d=4):
        super().__init__()
        self.out_dim = d
        self.conv = nn.Conv2d(c, d, 3, stride=2, padding=1)

    def forward(self, x):
        return torch.relu(self.conv(x)).mean(dim=(2, 3))


# ---------------------------------------------------------------- 2. native anchor, tiles


def test_native_one_x_scale_is_the_input_and_only_resized_scales_get_noise():
    x = _img(64, 64)
    cfg = MSRConfig(**NATIVE, tiles="grid", line_enhancement=False, noise_std=0.05)
    out = scale_hierarchy([x], cfg, torch.Generator().manual_seed(0))  # (1, T, K, C, S, S)
    assert out.shape == (1, 4, 3, 3, 32, 32)  # 2 x 2 tiles of 32 px cover the 64 px image
    one = out[0, :, 1]  # (T, C, S, S), factor 1.0
    assert torch.equal(one[0], x[:, :32, :32]) and torch.equal(one[1], x[:, :32, 32:])
    assert torch.equal(one[2], x[:, 32:, :32]) and torch.equal(one[3], x[:, 32:, 32:])
    # the others: a resize plus noise (the same resize without noise differs by about noise_std)
    quiet = scale_hierarchy([x], MSRConfig(**NATIVE, tiles="grid", line_enhancement=False, noise=False))
    assert torch.equal(quiet[0, :, 1], one)
    for k in (0, 2):
        diff = (out[0, :, k] - quiet[0, :, k]).std()
        assert 0.03 < float(diff) < 0.06
    # with lines into the diffusion only, the classifier still sees the untouched image
    lines = MSRConfig(**NATIVE, tiles="grid", lines_into="diffusion", noise_std=0.05)
    assert torch.equal(scale_hierarchy([x], lines, torch.Generator().manual_seed(0))[0, :, 1], one)


def test_native_grid_tiles_cover_every_pixel_of_a_128px_image():
    cfg = MSRConfig(
        anchor="native", scale_factors=(1.0,), input_size=64, tiles="grid", retrospection=False, line_enhancement=False
    )
    x = _img(128, 128)
    windows = tile_windows(128, 128, cfg, None)
    assert windows == [(0, 0), (0, 64), (64, 0), (64, 64)]
    seen = torch.zeros(128, 128, dtype=torch.bool)
    for t, le in windows:
        seen[t : t + 64, le : le + 64] = True
    assert bool(seen.all())
    tiles = retrospect_each([x], None, cfg)[0]  # (T, K, C, S, S)
    assert tiles.shape == (4, 1, 3, 64, 64) and torch.equal(tiles[3, 0], x[:, 64:, 64:])
    # odd sizes overlap as needed and still cover everything
    for length in (64, 65, 100, 129, 300):
        starts = grid_starts(length, 64)
        covered = torch.zeros(length, dtype=torch.bool)
        for s in starts:
            covered[s : s + 64] = True
        assert bool(covered.all()) and starts[-1] == length - 64


def test_native_shapes_minimum_and_random_tiles():
    cfg = MSRConfig(**NATIVE)
    assert minimum_input_size(cfg) == 64  # the 0.5x scale must hold one 32 px window
    with pytest.raises(ValueError, match="at least 64"):
        scale_hierarchy([_img(48, 80)], cfg)
    out = retrospect_each([_img(64, 96), _img(100, 64, 1)], None, MSRConfig(**NATIVE, tiles="grid"))
    assert [tuple(o.shape) for o in out] == [(6, 3, 3, 32, 32), (8, 3, 3, 32, 32)]
    with pytest.raises(ValueError, match="different numbers of tiles"):
        retrospect([_img(64, 96), _img(100, 64, 1)], None, MSRConfig(**NATIVE, tiles="grid"))
    rnd = MSRConfig(**NATIVE, tiles="random", num_tiles=5)
    a = retrospect_each([_img(80, 80)], None, rnd, torch.Generator().manual_seed(3))[0]
    b = retrospect_each([_img(80, 80)], None, rnd, torch.Generator().manual_seed(3))[0]
    assert a.shape == (5, 3, 3, 32, 32) and torch.equal(a, b)
    with pytest.raises(ConfigError, match="tiles"):
        MSRConfig(tiles="grid")  # grid tiles need anchor: native
    with pytest.raises(ConfigError, match="num_tiles"):
        MSRConfig(**NATIVE, num_tiles=3)
    assert _bucket("6x3x3x32x32") == (6, 32, 32) and _bucket("3x6x64x64") == (64, 64)


def test_native_retrospection_batches_all_tiles_through_the_ldm():
    ldm = Recorder()
    cfg = MSRConfig(**{**NATIVE, "retrospection": True}, tiles="grid", representation="residual+image")
    out = retrospect_each([_img(64, 64), _img(64, 96, 1)], ldm, cfg, torch.Generator().manual_seed(0))
    assert len(ldm.inputs) == 1 and ldm.inputs[0].shape == ((4 + 6) * 3, 3, 32, 32)
    assert out[0].shape == (4, 3, 6, 32, 32) and out[1].shape == (6, 3, 6, 32, 32)


def _native_hrr(**over) -> HRRConfig:
    base = {
        "backbone": BACKBONE,
        "msr": {"anchor": "native", "scale_factors": [1.0, 2.0], "input_size": 32, "tiles": "grid"},
        "afr": {"num_anchors": 4},
    }
    base.update(over)
    return from_dict(HRRConfig, base, "model")


def test_tile_scores_are_averaged_by_the_detector():
    cfg = _native_hrr()
    torch.manual_seed(0)
    model = HRRDetector(cfg, backbone=Tiny()).eval()
    r = torch.rand(2, 3, 2, 3, 32, 32, generator=torch.Generator().manual_seed(1))  # (B, T, K, C, S, S)
    out = model(r)
    assert out.logits.shape == (2,) and out.scale_logits.shape == (2, 2, 2)
    per_tile = torch.stack([model(r[:, t : t + 1]).logits for t in range(3)], dim=1)  # (B, T)
    torch.testing.assert_close(out.logits, per_tile.mean(dim=1))
    terms = HRRObjective(cfg.objective)(model.train()(r), torch.tensor([0.0, 1.0]))
    terms["loss"].backward()
    with pytest.raises(ValueError, match="tiled"):
        model(r[:, 0])


def test_inference_averages_tiles_of_images_of_different_sizes():
    from hrr_core.inference import Detector

    msr = {"anchor": "native", "scale_factors": [1.0], "input_size": 32, "tiles": "grid", "retrospection": False}
    cfg = _native_hrr(msr={**msr, "line_enhancement": False}, backbone={**BACKBONE, "in_channels": 3})
    torch.manual_seed(0)
    model = HRRDetector(cfg, backbone=Tiny()).eval()
    card = {
        "kind": "hrr", "method": "hrr", "model_id": "hrr-test", "threshold": {"value": None},
        "preprocessing": {"min_side": minimum_input_size(cfg.msr), "retrospection": {}},
    }  # fmt: skip
    det = Detector(card, cfg, model, torch.device("cpu"))
    images = [_img(64, 64), _img(32, 96, 1), _img(32, 32, 2)]
    probs = det.predict_images(images, seeds=[0, 1, 2])
    for img, p in zip(images, probs):
        tiles = retrospect_each([img], None, cfg.msr)[0]  # (T, K, C, S, S)
        with torch.no_grad():
            per_tile = model(tiles.unsqueeze(1)).logits  # T images of one tile each
        assert p == pytest.approx(float(torch.sigmoid(per_tile.mean())), abs=1e-6)
    assert probs[0] == pytest.approx(det.predict_images([images[0]], seeds=[0])[0])


# ---------------------------------------------------------------- 3. lines into the diffusion, fixed scale


def test_lines_into_diffusion_reach_the_ldm_and_not_the_classifier():
    small = dict(scale_factors=(0.5, 1.0, 2.0), base_size=32, input_size=16, noise=False)
    x = [_img(40, 40)]
    plain = scale_hierarchy(x, MSRConfig(**small, line_enhancement=False))
    classifier = scale_hierarchy(x, MSRConfig(**small))
    diffusion = MSRConfig(**small, lines_into="diffusion", representation="residual+image")
    assert not torch.equal(classifier, plain)
    assert torch.equal(scale_hierarchy(x, diffusion), plain)  # no line map in what the classifier sees
    ldm = Recorder()
    r = retrospect(x, ldm, diffusion)  # (1, K, 6, S, S)
    assert torch.equal(r[:, :, :3], plain)  # the image channels: no line map
    assert torch.equal(ldm.inputs[0], classifier.flatten(0, 1))  # the LDM got the line-enhanced input
    x_hat = torch.nn.functional.avg_pool2d(classifier.flatten(0, 1), 3, 1, 1, count_include_pad=False)
    assert torch.equal(r[:, :, 3:], (plain - x_hat.view_as(plain)).abs())


def test_line_map_normalisation_switch():
    sharp = _img(32, 32).unsqueeze(0)
    blurry = torch.nn.functional.avg_pool2d(sharp, 5, 1, 2, count_include_pad=False)
    on, off = MSRConfig(base_size=32, input_size=16), MSRConfig(base_size=32, input_size=16, line_normalise=False)
    assert float(edge_map(blurry, on).amax()) == pytest.approx(1.0)
    assert float(edge_map(sharp, on).amax()) == pytest.approx(1.0)
    assert float(edge_map(blurry, off).amax()) < 0.5 * float(edge_map(sharp, off).amax())  # the blur stays visible
    assert torch.allclose(edge_map(sharp, on), edge_map(sharp, off) / edge_map(sharp, off).amax())


# ---------------------------------------------------------------- 4. AFR that refines


def test_quantile_anchors_match_torch_quantile():
    h = torch.randn(200, 5, generator=torch.Generator().manual_seed(0)) * 3 + 1
    afr = AdditiveFeatureRefinement(5, AFRConfig(num_anchors=4, anchors="quantile"))
    assert afr.anchors.shape == (5, 4)
    afr.fit_from_data(h)
    u = (h - h.mean(0)) / torch.sqrt(h.var(0, unbiased=False) + afr.norm.eps)
    expected = torch.quantile(u, torch.tensor([0.125, 0.375, 0.625, 0.875]), dim=0).T
    torch.testing.assert_close(afr.anchors, expected)
    torch.testing.assert_close(afr.norm.running_mean, h.mean(0))
    assert afr(h).shape == (200,)


def test_adaptive_tau_weights_informative_groups_less():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(400, 6, generator=g)
    labels = (h[:, 0] + 0.3 * torch.randn(400, generator=g) > 0).float()
    afr = AdditiveFeatureRefinement(6, AFRConfig(num_anchors=4, tau_mode="adaptive"))
    summary = afr.fit_from_data(h, labels)
    assert int(afr.tau.argmin()) == 0 and summary["tau_max"] > summary["tau_min"]
    with pytest.raises(ValueError, match="labels"):
        AdditiveFeatureRefinement(6, AFRConfig(tau_mode="adaptive")).fit_from_data(h)


def test_afr_param_group_has_the_scaled_lr_and_the_proximal_step_uses_it():
    cfg = _hrr(afr={"lr_scale": 20.0})
    model = HRRDetector(cfg, backbone=Tiny())
    opt = build_optimizer(model, TrainConfig(lr=0.01))
    assert [g["lr"] for g in opt.param_groups] == [0.01, pytest.approx(0.2)]
    head = {id(p) for p in model.head.parameters()}
    assert {id(p) for p in opt.param_groups[1]["params"]} == head
    assert not head & {id(p) for p in opt.param_groups[0]["params"]}
    assert proximal_lr(opt) == pytest.approx(0.2)
    plain = HRRDetector(_hrr(), backbone=Tiny())
    assert proximal_lr(build_optimizer(plain, TrainConfig(lr=0.01))) == 0.01


def test_large_lambda_prunes_groups_and_the_report_lists_the_kept_ones():
    cfg = _hrr(fusion="concat", objective={"lambda_omega": 1.0})
    torch.manual_seed(0)
    model = HRRDetector(cfg, backbone=Tiny(d=4))  # 3 scales x 4 dims = 12 groups
    with torch.no_grad():
        model.head.alpha.mul_(0)
        model.head.alpha[[1, 6, 11]] = 1.0  # norms 2 (M = 8), the others 0
        model.head.alpha[5] = 0.01
    model.post_optimizer_step(0.5)  # threshold 0.5: group 5 (norm ~0.03) is pruned
    rep = model.afr_report()
    assert rep["kept_dims"] == [1, 6, 11] and rep["active_dims"] == 3 and rep["dims"] == 12
    assert rep["kept_per_scale"] == [1, 1, 1]
    from hrr_core.methods.hrr import SPEC

    assert "kept_dims" not in SPEC.train_report(model, cfg)["afr"]  # v1 config: the v1 report
    v2 = _hrr(fusion="concat", afr={"linear": True})
    model2 = HRRDetector(v2, backbone=Tiny(d=4))
    report = SPEC.train_report(model2, v2)["afr"]
    assert report["kept_dims"] == list(range(12)) and report["v2_options"] == ["afr.linear"]


def test_linear_term_extrapolates_beyond_the_anchors():
    cfg = AFRConfig(num_anchors=4, anchor_range=2.0, linear=True, init_std=0.0)
    afr = AdditiveFeatureRefinement(1, cfg).eval()  # running stats 0 / 1: u = h
    with torch.no_grad():
        afr.alpha.fill_(0.3)
        afr.beta.fill_(0.5)
    far = torch.tensor([[6.0], [10.0]])
    f = afr(far).detach()
    assert float(f[1] - f[0]) == pytest.approx(0.5 * 4, rel=1e-4)  # RBFs are ~0 there; the slope remains
    rbf_only = AdditiveFeatureRefinement(1, AFRConfig(num_anchors=4, init_std=0.0)).eval()
    with torch.no_grad():
        rbf_only.alpha.fill_(0.3)
    assert float(rbf_only(far).detach().abs().max()) < 1e-6  # without it, the score is flat beyond the anchors
    # the linear term is part of its group: pruned together
    afr.proximal_step(10.0)
    assert afr.active_dims() == 0 and float(afr.beta.detach().abs().sum()) == 0.0


def test_data_pass_through_the_training_loop(tmp_path):
    from hrr_core.training.loop import fit

    afr = {"num_anchors": 4, "anchors": "quantile", "anchor_batches": 2, "lr_scale": 10.0}
    cfg = _hrr(msr={"base_size": 64, "input_size": 32, "scale_factors": [1.0]}, afr=afr)
    torch.manual_seed(0)
    model = HRRDetector(cfg, backbone=Tiny())
    assert model.needs_data_pass
    g = torch.Generator().manual_seed(0)
    data = [
        {"inputs": torch.rand(1, 3, 32, 32, generator=g), "labels": torch.tensor(float(i % 2)), "ids": f"{i}"}
        for i in range(16)
    ]
    loader = torch.utils.data.DataLoader(data, batch_size=4)
    before = model.head.anchors.clone()
    tcfg = TrainConfig(epochs=1, batch_size=4, warmup_steps=0, device="cpu", require_above_chance=False)
    fit(model, HRRObjective(cfg.objective), loader, None, tcfg, tmp_path, resume=False)
    assert not torch.equal(model.head.anchors, before) and model.head.anchors.shape == (4, 4)
