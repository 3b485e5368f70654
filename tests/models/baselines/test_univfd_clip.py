"""UnivFD through a tiny randomly initialised CLIP vision model saved locally (needs transformers)."""

from __future__ import annotations

import pytest
import torch

from hrr_core.confutil import ConfigError
from hrr_core.losses.classification import bce_objective
from hrr_core.methods import build as build_baseline

transformers = pytest.importorskip("transformers", reason="the CLIP path of UnivFD needs `pip install transformers`")


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory):
    cfg = transformers.CLIPVisionConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=32,
        patch_size=8,
        projection_dim=8,
    )
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("clip")
    transformers.CLIPVisionModelWithProjection(cfg).save_pretrained(d)
    return str(d)


@pytest.mark.parametrize("mode", ["center_crop", "resize"])
def test_univfd_clip_shapes_and_frozen(tiny_clip_dir, mode):
    model = build_baseline("univfd", {"encoder": "clip", "clip_path": tiny_clip_dir, "clip_input": mode})
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {"head.weight", "head.bias"}
    model.train()
    out = model(torch.rand(2, 3, 37, 53))
    assert out.logits.shape == (2,) and out.features.shape == (2, 8)
    bce_objective(out, torch.tensor([0.0, 1.0]))["loss"].backward()
    assert model.head.weight.grad is not None
    assert all(p.grad is None for p in model.encoder.parameters())


def test_univfd_clip_needs_a_path():
    with pytest.raises(ConfigError, match="clip_path"):
        build_baseline("univfd", {"encoder": "clip"})
