"""The from-scratch trunk baselines (NPR, SAFE, BSF, FreqNet) and FerretNet: input transforms
against hand-computed cases, shapes, registry, paper parameter counts, a 2-step training run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hrr_core import methods
from hrr_core.confutil import ConfigError
from hrr_core.losses.classification import bce_objective
from hrr_core.methods import build as build_baseline
from hrr_core.models.baselines.bsf import PixelValueMapping, value_permutation
from hrr_core.models.baselines.ferretnet import median_residual
from hrr_core.models.baselines.freqnet import FrequencyInput
from hrr_core.models.baselines.safe import SAFEAugmentConfig, haar_dwt2, safe_augment
from hrr_core.models.outputs import DetectorOutput

pytestmark = pytest.mark.usefixtures("one_thread")
TINY_TRUNK = {"width": 4, "blocks": [1, 1]}
TINY = {
    "npr": TINY_TRUNK,
    "safe": TINY_TRUNK,
    "bsf": TINY_TRUNK,
    "freqnet": TINY_TRUNK,
    "ferretnet": {"stem": 4, "widths": [8, 16], "blocks": [1, 1]},
}


def _n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_new_baselines_are_registered_with_their_kind():
    for name in ("safe", "ferretnet", "bsf", "freqnet"):
        assert methods.get(name).trains == "loop"
    assert methods.get("selfdesc").is_scorer and methods.get("selfdesc").calibrates_on_val
    assert methods.get("safe").train_transform is not None, "SAFE trains with its augmentations"
    with pytest.raises(ConfigError, match="safe.model.bands"):
        build_baseline("safe", {"bands": ["XX"]})
    with pytest.raises(ConfigError, match="ferretnet.model.blocks"):
        build_baseline("ferretnet", {"widths": [8, 16], "blocks": [1]})
    with pytest.raises(ConfigError, match="freqnet.model.cutoff"):
        build_baseline("freqnet", {"cutoff": 0.5})


def test_haar_dwt_of_a_4x4_image_by_hand():
    x = torch.tensor([[1.0, 0, 0, 2], [0, 1, 0, 0], [3, 0, 0, 0], [0, 0, 4, 1]]).view(1, 1, 4, 4)
    bands = haar_dwt2(x)
    assert torch.equal(bands["HH"][0, 0], torch.tensor([[1.0, -1.0], [1.5, -1.5]]))
    assert torch.equal(bands["LL"][0, 0], torch.tensor([[1.0, 1.0], [1.5, 2.5]]))
    assert torch.equal(bands["LH"][0, 0], torch.tensor([[0.0, 1.0], [1.5, -2.5]]))
    assert torch.equal(bands["HL"][0, 0], torch.tensor([[0.0, -1.0], [1.5, 1.5]]))
    y = torch.rand(2, 3, 37, 53)  # odd sizes: the last row / column is dropped; energy preserved
    out = haar_dwt2(y)
    assert out["HH"].shape == (2, 3, 18, 26)
    energy = sum(b.pow(2).sum() for b in out.values())
    assert torch.allclose(energy, y[..., :36, :52].pow(2).sum(), rtol=1e-5)


def test_median_residual_of_a_tiny_image_by_hand():
    x = torch.tensor([[1.0, 2, 3], [4, 100, 6], [7, 8, 9]]).view(1, 1, 3, 3)
    r = median_residual(x)[0, 0]
    assert r[1, 1] == 100 - 5  # neighbours 1,2,3,4,6,7,8,9: median (4 + 6) / 2
    assert r[0, 0] == 1 - 52  # reflect padding: neighbours 100,4,100,2,2,100,4,100 -> (4 + 100) / 2
    assert torch.count_nonzero(median_residual(torch.full((2, 3, 8, 9), 0.3))) == 0


def test_bsf_mapping_by_hand_and_a_fixed_permutation():
    reverse = torch.arange(255, -1, -1).view(1, 256)  # v -> 255 - v
    x = torch.randint(0, 256, (2, 3, 33, 35)).float() / 255
    assert torch.allclose(PixelValueMapping(reverse)(x), 1 - x, atol=1e-6)
    table = value_permutation(7, 3)
    assert table.shape == (3, 256) and all(torch.equal(t.sort().values, torch.arange(256)) for t in table)
    assert torch.equal(table, value_permutation(7, 3)) and not torch.equal(table, value_permutation(8, 3))
    mapped = PixelValueMapping(table[:1])(x)
    v = (x * 255).round().long()
    assert torch.allclose(mapped * 255, table[0][v].float(), atol=1e-4)


def test_frequency_input_high_pass():
    const = torch.full((1, 3, 32, 32), 0.7)
    assert FrequencyInput(0.125, ("spatial", "amplitude")).forward(const).abs().max() < 1e-6  # DC is removed
    checker = ((torch.arange(32).view(-1, 1) + torch.arange(32).view(1, -1)) % 2).float().expand(1, 3, 32, 32)
    spatial = FrequencyInput(0.125, ("spatial",))(checker)  # Nyquist passes, only the mean goes
    assert torch.allclose(spatial, checker - 0.5, atol=1e-5)
    assert FrequencyInput().out_channels == 9 and FrequencyInput()(torch.rand(2, 3, 37, 53)).shape == (2, 9, 37, 53)


def test_safe_augment_reproducible_changes_and_crops():
    arr = np.random.default_rng(0).integers(0, 256, (40, 52, 3), dtype=np.uint8)
    on = SAFEAugmentConfig(jitter_prob=1.0, rotate_prob=1.0, mask_prob=1.0, crop=32)
    a, b = (safe_augment(arr, np.random.default_rng(3), on) for _ in range(2))
    assert a.shape == (32, 32, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
    off = SAFEAugmentConfig(jitter_prob=0.0, rotate_prob=0.0, mask_prob=0.0)
    assert np.array_equal(safe_augment(arr, np.random.default_rng(3), off), arr)
    masked = safe_augment(
        arr,
        np.random.default_rng(3),
        SAFEAugmentConfig(jitter_prob=0, rotate_prob=0, mask_prob=1, mask_ratio=1.0, mask_patch=8),
    )
    assert (masked == 0).any() and np.isin(masked, np.r_[0, np.unique(arr)]).all()  # zeroed patches, no new values
    with pytest.raises(ValueError, match="never resizes"):
        safe_augment(arr[:20], np.random.default_rng(0), on)


@pytest.mark.parametrize("name", sorted(TINY))
def test_forward_shapes_odd_size(name):
    model = build_baseline(name, TINY[name])
    out = model(torch.rand(2, 3, 37, 53))
    assert isinstance(out, DetectorOutput) and out.logits.shape == (2,) and out.features.shape == (2, model.out_dim)
    with pytest.raises(ValueError, match="at least 32"):
        model(torch.rand(2, 3, 16, 40))


@pytest.mark.parametrize("name", sorted(TINY))
def test_two_step_training_reduces_loss_and_changes_weights(name):
    torch.manual_seed(0)
    model = build_baseline(name, TINY[name]).train()
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(8, 3, 32, 32, generator=g), torch.tensor([0.0, 1.0] * 4)
    x[1::2] = x[1::2].repeat_interleave(2, -1)[..., ::2]  # generated half: nearest 2x up-sampled columns
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    losses = []
    for step in range(3):  # two optimiser steps, then the loss they lead to
        loss = bce_objective(model(x), y)["loss"]
        losses.append(float(loss.detach()))
        if step == 2:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[2] < losses[0], losses
    assert not torch.equal(start["head.weight"], model.state_dict()["head.weight"])


def test_default_parameter_counts_match_the_papers():
    safe, ferret = _n_params(build_baseline("safe", {})), _n_params(build_baseline("ferretnet", {}))
    print(f"SAFE {safe / 1e6:.3f} M (paper 1.44 M), FerretNet {ferret / 1e6:.3f} M (paper 1.06 M)")
    assert abs(safe - 1.44e6) / 1.44e6 < 0.01 and abs(ferret - 1.06e6) / 1.06e6 < 0.02
    assert _n_params(build_baseline("npr", {})) == _n_params(build_baseline("bsf", {})) == safe  # one trunk, 3 inputs
