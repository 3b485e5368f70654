"""Plain CNN detector and its BCE objective."""

from __future__ import annotations

import math

import pytest
import torch

from hrr_core.confutil import ConfigError, from_dict
from hrr_core.losses.classification import bce_objective
from hrr_core.models.classifier import BinaryClassifier, ClassifierConfig
from hrr_core.models.outputs import DetectorOutput

TINY = {"backbone": {"name": "small_resnet", "pretrained": False, "width": 8}, "dropout": 0.1}


def test_forward_and_bce_backward_on_cpu():
    model = BinaryClassifier(from_dict(ClassifierConfig, TINY))
    out = model(torch.rand(4, 3, 37, 45))
    assert isinstance(out, DetectorOutput)
    assert out.logits.shape == (4,) and out.features.shape == (4, model.backbone.out_dim)
    losses = bce_objective(out, torch.tensor([0.0, 1.0, 1.0, 0.0]))
    assert set(losses) == {"loss", "bce"}
    losses["loss"].backward()
    assert model.backbone.conv1.weight.grad is not None
    assert model.head.weight.grad.abs().sum() > 0


def test_default_config_is_pretrained_lite0():
    cfg = from_dict(ClassifierConfig, {})
    assert cfg.backbone.name == "efficientnet_lite0" and cfg.backbone.pretrained
    with pytest.raises(ConfigError, match="dropout"):
        from_dict(ClassifierConfig, {"dropout": 1.5})
    with pytest.raises(ConfigError, match="backbone.width"):
        from_dict(ClassifierConfig, {"backbone": {"width": 0}})


def test_bce_analytic_values():
    zero = DetectorOutput(logits=torch.zeros(3))
    assert math.isclose(bce_objective(zero, torch.tensor([0.0, 1.0, 1.0]))["loss"].item(), math.log(2), rel_tol=1e-6)
    confident = DetectorOutput(logits=torch.tensor([-30.0, 30.0]))
    assert bce_objective(confident, torch.tensor([0.0, 1.0]))["bce"].item() < 1e-6


def test_bce_rejects_bad_labels():
    out = DetectorOutput(logits=torch.zeros(2))
    with pytest.raises(ValueError, match="shape"):
        bce_objective(out, torch.zeros(2, 1))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        bce_objective(out, torch.tensor([0.0, 2.0]))
