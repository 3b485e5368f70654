"""Trainable baselines (CNNSpot, NPR, DIRE classifier, UnivFD): build, shapes on odd sizes, BCE backward."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hrr_core import methods
from hrr_core.confutil import ConfigError
from hrr_core.losses.classification import bce_objective
from hrr_core.methods import build as build_baseline
from hrr_core.models.baselines.cnnspot import CNNSpotAugmentConfig, cnnspot_augment
from hrr_core.models.baselines.npr import npr_residual
from hrr_core.models.outputs import DetectorOutput

SMALL = {"name": "small_resnet", "pretrained": False, "width": 4}
LABELS = torch.tensor([0.0, 1.0])


def _check_trainable(model, x):
    model.train()
    out = model(x)
    assert isinstance(out, DetectorOutput) and out.logits.shape == (x.shape[0],)
    bce_objective(out, LABELS)["loss"].backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads)
    return out


def test_registry_is_complete():
    assert set(methods.names()) == {
        "classifier",
        "hrr",
        "cnnspot",
        "npr",
        "dire",
        "univfd",
        "aeroblade",
        "spectrum_lr",
        "safe",
        "ferretnet",
        "bsf",
        "freqnet",
        "selfdesc",
    }
    with pytest.raises(ValueError, match="unknown method kind 'cnndetect'"):
        build_baseline("cnndetect", {})
    with pytest.raises(ConfigError, match="npr.model.width"):
        build_baseline("npr", {"width": 0})


def test_cnnspot_forward_backward_odd_size():
    model = build_baseline("cnnspot", {"classifier": {"backbone": SMALL}})
    _check_trainable(model, torch.rand(2, 3, 37, 53))


def test_cnnspot_augment_reproducible_and_changes_image():
    arr = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    cfg = CNNSpotAugmentConfig(blur_prob=1.0, jpeg_prob=1.0)
    a = cnnspot_augment(arr, np.random.default_rng(7), cfg)
    b = cnnspot_augment(arr, np.random.default_rng(7), cfg)
    assert a.dtype == np.uint8 and a.shape == arr.shape
    assert np.array_equal(a, b) and not np.array_equal(a, arr)
    off = cnnspot_augment(arr, np.random.default_rng(7), CNNSpotAugmentConfig(blur_prob=0.0, jpeg_prob=0.0))
    assert np.array_equal(off, arr)
    with pytest.raises(ValueError, match="uint8"):
        cnnspot_augment(arr.astype(np.float32), np.random.default_rng(0), cfg)
    with pytest.raises(ConfigError, match="jpeg_quality"):
        CNNSpotAugmentConfig(jpeg_quality=(30, 101))


def test_npr_residual_zero_on_block_constant_and_matches_interpolate():
    blocks = torch.rand(2, 3, 19, 27)
    x = blocks.repeat_interleave(2, -2).repeat_interleave(2, -1)[..., :37, :53]  # (2, 3, 37, 53)
    r = npr_residual(x)
    assert r.shape == (2, 3, 36, 52) and torch.count_nonzero(r) == 0
    y = torch.rand(1, 3, 36, 52)
    ref = y - F.interpolate(
        F.interpolate(y, scale_factor=0.5, mode="nearest", recompute_scale_factor=True),
        scale_factor=2,
        mode="nearest",
        recompute_scale_factor=True,
    )
    assert torch.equal(npr_residual(y), ref)


def test_npr_forward_backward_odd_size():
    model = build_baseline("npr", {"width": 4, "blocks": [1, 1]})
    out = _check_trainable(model, torch.rand(2, 3, 37, 53))
    assert out.features.shape == (2, 32)  # bottleneck: 4 * (2 * width)
    official = build_baseline("npr", {})
    assert official.out_dim == 512 and official.head.in_features == 512


def test_dire_classifier_on_residuals():
    model = build_baseline("dire", {"classifier": {"backbone": SMALL}})
    _check_trainable(model, torch.rand(2, 3, 37, 53) * 0.1)
    with pytest.raises(ConfigError, match="in_channels"):
        build_baseline("dire", {"classifier": {"backbone": {**SMALL, "in_channels": 6}}})


def test_univfd_lite0_only_head_trains_and_encoder_frozen():
    model = build_baseline("univfd", {})
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"head.weight", "head.bias"}
    _check_trainable(model, torch.rand(2, 3, 37, 53))
    assert not model.encoder.training and model.head.weight.grad is not None
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    opt.step()
    model(torch.rand(2, 3, 40, 40))  # a train-mode forward must not move BN statistics
    after = model.encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
