"""Multi-scale style retrospection: shapes for odd sizes, size errors, switches, determinism."""

from __future__ import annotations

import pytest
import torch

from hrr_core.confutil import ConfigError, from_dict
from hrr_core.models.ldm import LatentDiffusion, LDMConfig
from hrr_core.models.msr import (
    MSRConfig,
    MultiScaleStyleRetrospection,
    edge_map,
    minimum_input_size,
    representation_channels,
    retrospect,
    scale_hierarchy,
)

SMALL = dict(scale_factors=(0.5, 1.0, 2.0), base_size=32, input_size=16, max_upscale=4.0, num_steps=2)
TINY_LDM = dict(
    norm_num_groups=4,
    vae_block_out_channels=(8, 8),
    vae_latent_channels=2,
    unet_block_out_channels=(8, 16),
    max_train_timestep=400,
)


pytestmark = pytest.mark.usefixtures("one_thread")


def _img(h, w, seed=0, c=3):
    return torch.rand(c, h, w, generator=torch.Generator().manual_seed(seed))


class HalfBlur:
    """Stand-in retrospector: a deterministic blur plus generator noise."""

    def img2img(self, x, strength, num_steps, generator=None):
        noise = torch.randn(x.shape, generator=generator) * 0.01
        return (torch.nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False) + noise).clamp(0, 1)


@pytest.fixture(scope="module")
def tiny_ldm():
    return LatentDiffusion.create(LDMConfig(**TINY_LDM))


def test_config_from_dict_and_errors():
    cfg = from_dict(MSRConfig, {"scale_factors": [0.5, 1, 2], "base_size": 64, "input_size": 32}, "msr")
    assert cfg.num_scales == 3 and cfg.scale_factors == (0.5, 1.0, 2.0)
    with pytest.raises(ConfigError, match="input_size"):
        MSRConfig(base_size=64, input_size=64)  # the 0.5x scale is only 32 px
    with pytest.raises(ConfigError, match="msr.representation"):
        from_dict(MSRConfig, {"representation": "diff"}, "msr")


@pytest.mark.parametrize("size", [(37, 91), (91, 37), (1000, 3), (16, 16)])
def test_odd_sizes_give_fixed_shapes(size):
    cfg = MSRConfig(**{**SMALL, "max_upscale": 16.0, "retrospection": False})
    out = scale_hierarchy([_img(*size)], cfg, torch.Generator().manual_seed(0))
    assert out.shape == (1, 3, 3, 16, 16)


def test_mixed_size_list_with_retrospection():
    cfg = MSRConfig(**SMALL)
    imgs = [_img(37, 91, 1), _img(64, 48, 2)]
    r = retrospect(imgs, HalfBlur(), cfg, torch.Generator().manual_seed(0))
    assert r.shape == (2, 3, 3, 16, 16)
    assert r.flatten(2).amax(2).gt(0).all()  # every image and scale has a residual: retrospection ran


def test_too_small_names_the_minimum():
    cfg = MSRConfig(**SMALL)  # base 32 / max_upscale 4 -> 8 px
    assert minimum_input_size(cfg) == 8
    with pytest.raises(ValueError, match="at least 8 pixels"):
        scale_hierarchy([_img(7, 100)], cfg)
    scale_hierarchy([_img(8, 100)], cfg)  # exactly the minimum is fine


def test_rejects_values_outside_unit_range():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        scale_hierarchy([_img(32, 32) * 255], MSRConfig(**SMALL))


def test_switches_and_representations():
    imgs = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(3))
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    plain = scale_hierarchy(imgs, MSRConfig(**SMALL, noise=False, line_enhancement=False), g())
    noisy = scale_hierarchy(imgs, MSRConfig(**SMALL, line_enhancement=False), g())
    lined = scale_hierarchy(imgs, MSRConfig(**SMALL, noise=False), g())
    assert not torch.equal(plain, noisy) and not torch.equal(plain, lined)
    assert (noisy - plain).abs().max() < 0.1  # sigma_n = 0.01
    both = retrospect(imgs, HalfBlur(), MSRConfig(**SMALL, representation="residual+image"), g())
    assert both.shape == (2, 3, 6, 16, 16) and representation_channels(MSRConfig(representation="residual+image")) == 6
    x_tilde = scale_hierarchy(imgs, MSRConfig(**SMALL), g())
    assert torch.allclose(both[:, :, :3], x_tilde)  # image first, then the residual
    off = retrospect(imgs, None, MSRConfig(**SMALL, enabled=False), g())
    assert off.shape == (2, 1, 3, 16, 16)
    assert representation_channels(MSRConfig(enabled=False, representation="residual+image")) == 3


def test_edge_map_normalised_and_flat_image_has_no_lines():
    x = torch.zeros(1, 3, 32, 32)
    x[..., 10:20, 10:20] = 1.0
    e = edge_map(x, MSRConfig())
    assert torch.isclose(e.max(), torch.tensor(1.0)) and e.min() >= 0
    assert e[..., 15, 15].max() < e[..., 10, 15].max()  # edges stand out against the flat interior
    assert edge_map(torch.full((1, 3, 16, 16), 0.5), MSRConfig()).abs().max() < 1e-3  # float error only


def test_retrospection_deterministic_with_tiny_ldm(tiny_ldm):
    cfg = MSRConfig(**SMALL)
    imgs = [_img(37, 91, 4), _img(40, 40, 5)]
    msr = MultiScaleStyleRetrospection(cfg, tiny_ldm)
    a = msr(imgs, torch.Generator().manual_seed(7))
    b = msr(imgs, torch.Generator().manual_seed(7))
    c = msr(imgs, torch.Generator().manual_seed(8))
    assert a.shape == (2, 3, 3, 16, 16) and msr.out_channels == 3
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not any(p.requires_grad for p in tiny_ldm.parameters())


def test_missing_ldm_is_a_clear_error():
    with pytest.raises(ValueError, match="no LDM"):
        retrospect([_img(32, 32)], None, MSRConfig(**SMALL))
    with pytest.raises(ValueError, match="no LDM"):
        MultiScaleStyleRetrospection(MSRConfig(**SMALL))


def test_random_crop_uses_generator():
    cfg = MSRConfig(**SMALL, crop="random", noise=False)
    img = [_img(40, 90, 6)]
    a = scale_hierarchy(img, cfg, torch.Generator().manual_seed(1))
    b = scale_hierarchy(img, cfg, torch.Generator().manual_seed(1))
    c = scale_hierarchy(img, cfg, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
