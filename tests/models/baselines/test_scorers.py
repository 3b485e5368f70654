"""DIRE representation, AEROBLADE and the spectrum LR: training-free / sklearn baselines."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hrr_core.methods import build as build_baseline
from hrr_core.models.baselines.aeroblade import AEROBLADE, AEROBLADEConfig
from hrr_core.models.baselines.dire import dire_representation
from hrr_core.models.ldm import LatentDiffusion, LDMConfig, load_ldm

TINY_PIXEL = dict(space="pixel", norm_num_groups=4, unet_block_out_channels=(8, 16), max_train_timestep=1000)


class PerfectRecon:
    """A diffusion stand-in that reconstructs every image exactly."""

    def ddim_invert_reconstruct(self, x, num_steps, t_end=None):
        return x.clone()


class PoolAE:
    """An autoencoder stand-in: encode = 2x2 average pool, decode = nearest upsampling, so images
    constant on 2x2 blocks reconstruct exactly (``multiple`` 2 like a VAE's factor)."""

    vae = "stand-in"
    multiple = 2

    def encode(self, x):
        return F.avg_pool2d(x * 2 - 1, 2)

    def decode(self, z):
        return ((F.interpolate(z, scale_factor=2, mode="nearest") + 1) / 2).clamp(0, 1)


def _block_constant(n, h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    blocks = torch.rand(n, 3, (h + 1) // 2, (w + 1) // 2, generator=g)
    return blocks.repeat_interleave(2, -2).repeat_interleave(2, -1)[..., :h, :w]


def test_dire_zero_for_perfect_reconstruction():
    x = torch.rand(3, 3, 37, 53)
    d = dire_representation(x, PerfectRecon(), num_steps=20, batch_size=2)
    assert d.shape == x.shape and d.abs().max().item() < 1e-6


def test_dire_is_batch_independent_and_reloads_through_a_tiny_pixel_model(tmp_path):
    ldm = LatentDiffusion.create(LDMConfig(**TINY_PIXEL))
    x = torch.rand(2, 3, 33, 35, generator=torch.Generator().manual_seed(0))
    a = dire_representation(x, ldm, num_steps=1, batch_size=2)
    c = dire_representation(x, ldm, num_steps=1, batch_size=1)
    assert a.shape == x.shape
    assert torch.allclose(a, c, atol=1e-3)  # chunking: rounding, amplified by 1/sqrt(alpha-bar) near T
    assert a.abs().sum() > 0
    ldm.save(tmp_path / "saved")
    ldm.unet.save_pretrained(tmp_path / "diffusers" / "unet")  # diffusers layout: unet/ only = pixel space
    for folder in ("saved", "diffusers"):
        again = load_ldm(tmp_path / folder)
        assert not any(p.requires_grad for p in again.parameters())
        assert torch.allclose(dire_representation(x, again, num_steps=1, batch_size=2), a, atol=1e-6)
    with pytest.raises(ValueError, match="unet/"):
        load_ldm(tmp_path)


def test_dire_image_size_resizes_every_image_first():
    from hrr_core.models.baselines.dire import (
        DIREReprConfig,
        dire_from_config,
        dire_images,
    )

    cfg = DIREReprConfig(num_steps=1, image_size=32, quantize=False)
    assert dire_from_config(torch.rand(2, 3, 40, 40), PerfectRecon(), cfg).shape == (2, 3, 32, 32)
    out = dire_images([torch.rand(3, 40, 40), torch.rand(3, 64, 64)], PerfectRecon(), cfg)
    assert [tuple(r.shape) for r in out] == [(3, 32, 32), (3, 32, 32)]
    with pytest.raises(ValueError, match="image_size"):
        DIREReprConfig(image_size=4)


def test_dire_quantize_rounds_to_8_bits():
    class Shift(PerfectRecon):
        def ddim_invert_reconstruct(self, x, num_steps, t_end=None):
            return (x + 0.0123).clamp(0, 1)

    q = dire_representation(torch.rand(2, 3, 32, 32) * 0.9, Shift(), num_steps=1, quantize=True)
    assert torch.allclose(q * 255, torch.round(q * 255), atol=1e-4) and torch.allclose(q, torch.full_like(q, 3 / 255))


@pytest.mark.parametrize("distance", ["lite0_features", "l2"])
def test_aeroblade_ordering_and_save_load(tmp_path, distance):
    model = build_baseline("aeroblade", {"distance": distance, "batch_size": 2}, autoencoders=[PoolAE()]).to("cpu")
    clean = _block_constant(2, 37, 53)
    noisy = (clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    d_clean, d_noisy = model.distances(clean), model.distances(noisy)
    assert d_clean.shape == (2,) and np.all(d_clean < 1e-6) and np.all(d_noisy > d_clean)
    p = model.score(torch.cat([clean, noisy]))
    assert p.shape == (4,) and p[:2].min() > p[2:].max()
    model.fit(np.r_[d_noisy, d_clean + 1e-4], [0, 0, 1, 1])  # calibration on precomputed distances
    assert model.slope > 0
    model.save(tmp_path)
    again = AEROBLADE.load(tmp_path, autoencoders=[PoolAE()])
    assert np.array_equal(again.score(noisy), model.score(noisy))


def test_aeroblade_refuses_pixel_space_and_missing_autoencoders():
    pixel = LatentDiffusion.create(LDMConfig(**TINY_PIXEL))
    with pytest.raises(ValueError, match="pixel-space"):
        AEROBLADE(AEROBLADEConfig(distance="l2"), autoencoders=[pixel])
    with pytest.raises(ValueError, match="at least one autoencoder"):
        AEROBLADE(AEROBLADEConfig(distance="l2"), autoencoders=[])
    untrained = AEROBLADE(AEROBLADEConfig(distance="l2"))  # fit would train its autoencoder on the reals
    with pytest.raises(ValueError, match="call fit"):
        untrained.score(torch.rand(1, 3, 32, 32))


def test_spectrum_lr_fit_score_save_load(tmp_path):
    g = torch.Generator().manual_seed(0)
    real = torch.rand(6, 3, 37, 53, generator=g)
    fake = F.avg_pool2d(torch.rand(6, 3, 38, 54, generator=g), 3, stride=1, padding=1)[..., :37, :53]  # blurred
    model = build_baseline("spectrum_lr", {})
    feats = model.features(torch.cat([real, fake]))
    assert feats.shape == (12, 36 + 63)
    model.fit(torch.cat([real, fake]), [0] * 6 + [1] * 6)
    p = model.score(torch.cat([real, fake]))
    assert p.shape == (12,) and p[6:].min() > p[:6].max()
    model.save(tmp_path)
    again = type(model).load(tmp_path)
    assert np.array_equal(again.score(fake), model.score(fake))
    assert np.array_equal(model.fit(feats, [0] * 6 + [1] * 6).score(real), p[:6])
    with pytest.raises(ValueError, match="both classes"):
        model.fit(feats, [1] * 12)
