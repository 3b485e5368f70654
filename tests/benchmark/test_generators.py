"""The generator zoo and the trivial-detector difficulty check: tiny nets, CPU, seconds."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from hrr_core.benchmark.difficulty import spectrum_features, trivial_detector_ap
from hrr_core.benchmark.generators import FAMILIES, ZooConfig, build_generator, generate_mixed, smoke_zoo
from hrr_core.confutil import ConfigError, from_dict

CPU = torch.device("cpu")


def _crops(n, size, seed):
    """Smooth random 'photos': low-res noise upsampled, so spectra look roughly natural."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, size // 8, size // 8, generator=g)
    return (
        F.interpolate(low, size=(size, size), mode="bicubic", align_corners=False)
        + 0.03 * torch.randn(n, 3, size, size, generator=g)
    ).clamp(0, 1)


@pytest.fixture(scope="module")
def fitted():
    zoo, cache = smoke_zoo(), {}
    train = list(_crops(4, 64, 0)) + list(_crops(4, 32, 1))  # mixed sizes
    gens, stats = {}, {}
    for name in FAMILIES:
        gens[name] = build_generator(name, zoo, cache)
        stats[name] = gens[name].fit(train, CPU, torch.Generator().manual_seed(0))
    return gens, stats


TRAINED = {"vae": ("vae",), "ldm_img2img": ("vae", "unet"), "pixel_ddpm": ("unet",)}  # smoke_zoo: 3 steps each


@pytest.mark.parametrize("name", FAMILIES)
def test_fit_trains_the_configured_nets_and_generate_changes_every_image(fitted, name):
    gens, stats = fitted
    if name in TRAINED:
        assert {k: stats[name][k]["steps"] for k in TRAINED[name]} == dict.fromkeys(TRAINED[name], 3)
        assert set(stats[name]) == {*TRAINED[name], "seconds"}  # vae trains no UNet, pixel_ddpm no VAE
    elif name in ("gan_upsampler", "gan_sr", "vqgan"):
        assert stats[name]["steps"] == 3
    for size in (64, 96):
        x = _crops(3, size, 2)
        y = gens[name].generate(x, CPU, torch.Generator().manual_seed(1))
        assert y.shape == x.shape and y.dtype == torch.float32
        assert torch.isfinite(y).all()
        assert (y - x).abs().flatten(1).amax(1).gt(1e-3).all()  # a fake is never the real photo unchanged


def test_ldm_is_shared_and_trained_once(fitted):
    gens, stats = fitted
    assert stats["ldm_sample"]["shared"] is True
    assert gens["ldm_sample"].model is gens["ldm_img2img"].model


@pytest.mark.parametrize("name", ["ldm_img2img", "pixel_ddpm", "ldm_sample"])
def test_generation_deterministic_for_seed(fitted, name):
    gen = fitted[0][name]
    x = _crops(2, 64, 3)
    a = gen.generate(x, CPU, torch.Generator().manual_seed(7))
    b = gen.generate(x, CPU, torch.Generator().manual_seed(7))
    c = gen.generate(x, CPU, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("name", FAMILIES)
def test_save_load_round_trip(fitted, name, tmp_path):
    gen = fitted[0][name]
    gen.save(tmp_path / name)
    loaded = build_generator(name, smoke_zoo()).load(tmp_path / name, CPU)
    x = _crops(2, 64, 4)
    assert torch.equal(
        gen.generate(x, CPU, torch.Generator().manual_seed(3)),
        loaded.generate(x, CPU, torch.Generator().manual_seed(3)),
    )


def test_load_refuses_other_config(fitted, tmp_path):
    fitted[0]["vae"].save(tmp_path / "vae")
    with pytest.raises(ValueError, match="differs"):
        build_generator("vae", ZooConfig()).load(tmp_path / "vae", CPU)


def test_generate_mixed_keeps_order_and_shapes(fitted):
    imgs = [_crops(1, 64, 5)[0], _crops(1, 96, 6)[0], _crops(1, 64, 7)[0]]
    out = generate_mixed(fitted[0]["gan_upsampler"], imgs, CPU, torch.Generator().manual_seed(0))
    assert [o.shape for o in out] == [i.shape for i in imgs]


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match="unknown generator family"):
        build_generator("stylegan", ZooConfig())
    with pytest.raises(ConfigError, match="zoo.pixel_ddpm.strength"):
        from_dict(ZooConfig, {"pixel_ddpm": {"strength": 0.5}}, "zoo")  # beyond max_train_timestep
    with pytest.raises(ConfigError, match="zoo.vae.stepz"):
        from_dict(ZooConfig, {"vae": {"stepz": 3}}, "zoo")
    with pytest.raises(ConfigError, match="zoo.ldm_img2img.ldm.space"):
        from_dict(ZooConfig, {"ldm_img2img": {"ldm": {"space": "pixel"}}}, "zoo")
    with pytest.raises(ConfigError, match="zoo.vae.ldm.unet_steps"):
        from_dict(ZooConfig, {"vae": {"ldm": {"unet_steps": 10}}}, "zoo")


def test_partial_ldm_override_keeps_the_family_recipe():
    """A family's ldm: starts from the family's own LDMConfig, not LDMConfig's class defaults."""
    zoo = from_dict(ZooConfig, {"vae": {"ldm": {"vae_steps": 5}}, "pixel_ddpm": {"ldm": {"unet_steps": 7}}})
    assert zoo.vae.ldm == replace(ZooConfig().vae.ldm, vae_steps=5)
    assert (zoo.vae.ldm.seed, zoo.vae.ldm.unet_steps, zoo.vae.ldm.vae_latent_channels) == (11, 0, 8)
    assert zoo.pixel_ddpm.ldm == replace(ZooConfig().pixel_ddpm.ldm, unet_steps=7)
    assert (zoo.pixel_ddpm.ldm.space, zoo.pixel_ddpm.ldm.max_train_timestep) == ("pixel", 300)
    assert zoo.ldm_img2img == ZooConfig().ldm_img2img


def test_spectrum_features_shape_and_mixed_sizes():
    feats = spectrum_features([_crops(1, 64, 0)[0], _crops(1, 96, 1)[0]])
    assert feats.shape[0] == 2 and feats.ndim == 2 and torch.isfinite(torch.as_tensor(feats)).all()


def test_trivial_detector_finds_blur_and_not_identical_distributions():
    real_tr, real_te = _crops(40, 64, 10), _crops(40, 64, 11)
    blur = lambda x: F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), 3, 1)  # noqa: E731
    assert trivial_detector_ap(real_tr, blur(_crops(40, 64, 12)), real_te, blur(_crops(40, 64, 13))) > 0.95
    same = trivial_detector_ap(real_tr, _crops(40, 64, 12), real_te, _crops(40, 64, 13))
    assert 0.3 < same < 0.7
