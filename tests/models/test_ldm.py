"""The small-diffusion toolkit: tiny configs, CPU, seconds."""

from __future__ import annotations

import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel, UNet2DModel

from hrr_core.confutil import ConfigError, from_dict
from hrr_core.models.ldm import LatentDiffusion, LDMConfig, train_denoiser, train_vae

TINY = dict(
    norm_num_groups=4,
    vae_block_out_channels=(8, 8),
    vae_latent_channels=2,
    unet_block_out_channels=(8, 16),
    train_crop=16,
    vae_steps=2,
    unet_steps=2,
    vae_batch_size=2,
    unet_batch_size=2,
    max_train_timestep=400,
)


def _images(n=4, h=40, w=44, seed=0):
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def tiny_latent():
    cfg = LDMConfig(**TINY)
    model = LatentDiffusion.create(cfg)
    g = torch.Generator().manual_seed(0)
    vstats = train_vae(model.vae, _images(), cfg, torch.device("cpu"), g)
    ustats = train_denoiser(model.unet, _images(), cfg, torch.device("cpu"), g, vae=model.vae)
    assert vstats["steps"] == 2 and ustats["steps"] == 2
    assert vstats["scaling_factor"] > 0
    return model.eval()


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="max_train_timestep"):
        LDMConfig(max_train_timestep=0)
    with pytest.raises(ConfigError, match="norm_num_groups"):
        LDMConfig(norm_num_groups=32, vae_block_out_channels=(16,))
    with pytest.raises(ConfigError, match="ldm.space"):
        from_dict(LDMConfig, {"space": "voxel"}, "ldm")


def test_img2img_shape_and_determinism_odd_size(tiny_latent):
    x = _images(2, 37, 91, seed=1)
    a = tiny_latent.img2img(x, 0.3, 2, torch.Generator().manual_seed(5))
    b = tiny_latent.img2img(x, 0.3, 2, torch.Generator().manual_seed(5))
    c = tiny_latent.img2img(x, 0.3, 2, torch.Generator().manual_seed(6))
    assert a.shape == x.shape
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_strength_zero_is_autoencoder_reconstruction(tiny_latent):
    x = _images(2, 32, 32, seed=2)
    out = tiny_latent.img2img(x, 0.0, 3, torch.Generator().manual_seed(0))
    assert torch.allclose(out, tiny_latent.decode(tiny_latent.encode(x)), atol=1e-6)


def test_strength_beyond_trained_range_raises(tiny_latent):
    with pytest.raises(ValueError, match="max_train_timestep"):
        tiny_latent.img2img(_images(1, 16, 16), 0.9, 2)
    with pytest.raises(ValueError, match="sampling needs"):
        tiny_latent.sample(1, 16, 2)


def test_pixel_space_sample_and_dire():
    cfg = LDMConfig(**{**TINY, "space": "pixel", "max_train_timestep": 1000})
    model = LatentDiffusion.create(cfg)
    assert model.vae is None and model.multiple == 2
    s = model.sample(2, (18, 21), 2, torch.Generator().manual_seed(0))
    assert s.shape == (2, 3, 18, 21)
    x = _images(1, 23, 17)
    r = model.ddim_invert_reconstruct(x, 3)
    assert r.shape == x.shape and torch.equal(r, model.ddim_invert_reconstruct(x, 3))


def test_save_load_round_trip(tiny_latent, tmp_path):
    tiny_latent.save(tmp_path / "m")
    loaded = LatentDiffusion.load(tmp_path / "m", "cpu")
    assert loaded.cfg == tiny_latent.cfg
    assert loaded.vae.config.scaling_factor == pytest.approx(tiny_latent.vae.config.scaling_factor)
    x = _images(2, 24, 24, seed=3)
    a = tiny_latent.img2img(x, 0.2, 2, torch.Generator().manual_seed(1))
    b = loaded.img2img(x, 0.2, 2, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert torch.equal(tiny_latent.ddim_invert_reconstruct(x, 2), loaded.ddim_invert_reconstruct(x, 2))


def test_from_pretrained_parts_unconditional(tmp_path):
    torch.manual_seed(0)
    vae = AutoencoderKL(
        block_out_channels=(8, 8),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        norm_num_groups=4,
        latent_channels=4,
    )
    unet = UNet2DModel(
        in_channels=4,
        out_channels=4,
        block_out_channels=(8, 16),
        norm_num_groups=4,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        layers_per_block=1,
    )
    vae.save_pretrained(tmp_path / "vae")
    unet.save_pretrained(tmp_path / "unet")
    model = LatentDiffusion.from_pretrained_parts(tmp_path / "vae", tmp_path / "unet", "cpu")
    assert model.cfg.space == "latent" and model.multiple == 4
    x = _images(1, 30, 26)
    assert model.img2img(x, 0.5, 2, torch.Generator().manual_seed(0)).shape == x.shape


def test_from_pretrained_parts_conditional_unet(tmp_path):
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        in_channels=3,
        out_channels=3,
        block_out_channels=(8, 16),
        norm_num_groups=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        layers_per_block=1,
        cross_attention_dim=8,
        attention_head_dim=2,
    )
    unet.save_pretrained(tmp_path / "unet")
    model = LatentDiffusion.from_pretrained_parts(None, tmp_path / "unet", "cpu")
    x = _images(1, 15, 20)
    assert model.img2img(x, 0.3, 2, torch.Generator().manual_seed(0)).shape == x.shape
